"""The MLflow adapter: MLflow 3 embedded, and its equivalent of each operation measured.

Owns everything MLflow: telemetry off (``telemetry_off``, also for the fresh processes
that import it), silencing its output while it is timed (``quiet``), the embedded set-up
(a sqlite tracking and registry store, local artifacts, explicit ``pip_requirements``
and ``serialization_format="pickle"``) and ``MLflowPeer``, whose methods do what the
modelversions call they are compared with does (``deploy_equivalent``,
``mark_failed_equivalent``, ``rollback`` by hand) or only its single call (``deploy``,
``mark``). ``mlflow`` is imported when a peer is built, never at import time.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any


def telemetry_off(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Turn MLflow's telemetry off in ``env`` (unless set already); returns ``env``."""
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    return env


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence MLflow's progress lines and warnings while it is being timed."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stderr(io.StringIO()),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


class MLflowPeer:
    """MLflow 3 embedded: a sqlite tracking/registry store and local artifacts."""

    def __init__(self, root: Path) -> None:
        telemetry_off(os.environ)
        import logging

        with quiet():
            import mlflow
            import mlflow.sklearn
            from mlflow import MlflowClient

        for name in ("mlflow", "alembic", "sqlalchemy"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.mlflow = mlflow
        self.version = mlflow.__version__
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        with quiet():
            experiment = mlflow.create_experiment(
                "bench", artifact_location=(root / "artifacts").as_uri()
            )
            mlflow.set_experiment(experiment_id=experiment)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        import sklearn

        self.requirements = [f"scikit-learn=={sklearn.__version__}"]

    def log_register(self, name: str, model: Any) -> str:
        """``log_model`` + registration: a new version of ``name``; returns the version."""
        mlflow = self.mlflow
        with quiet(), mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                pip_requirements=self.requirements,
                serialization_format="pickle",
                registered_model_name=name,
            )
        return str(info.registered_model_version)

    def deploy(self, name: str, version: str, alias: str = "production") -> None:
        """Only move the alias (what ``deploy`` does to the pointer)."""
        self.client.set_registered_model_alias(name, alias, version)

    def deploy_equivalent(self, name: str, version: str, alias: str = "production") -> None:
        """What ``deploy`` does: move the alias; the replaced candidate becomes stable."""
        client = self.client
        try:
            current = client.get_model_version_by_alias(name, alias)
        except Exception:  # no alias yet
            current = None
        client.set_registered_model_alias(name, alias, version)
        replaced = current is not None and current.version != version
        if replaced and current.tags.get("status", "candidate") == "candidate":
            client.set_model_version_tag(name, current.version, "status", "stable")

    def mark(self, name: str, version: str, status: str) -> None:
        """Only set the status tag."""
        self.client.set_model_version_tag(name, version, "status", status)

    def mark_failed_equivalent(self, name: str, version: str, reason: str) -> None:
        """What ``mark_failed`` records: the status and the reason."""
        self.client.set_model_version_tag(name, version, "status", "failed")
        self.client.set_model_version_tag(name, version, "failure_reason", reason)

    def rollback(self, name: str) -> str:
        """By hand: tag the deployed version failed, find the latest stable below it, move."""
        client = self.client
        current = client.get_model_version_by_alias(name, "production")
        client.set_model_version_tag(name, current.version, "status", "failed")
        stable = client.search_model_versions(f"name='{name}' and tags.status='stable'")
        below = [int(mv.version) for mv in stable if int(mv.version) < int(current.version)]
        target = str(max(below))
        client.set_registered_model_alias(name, "production", target)
        return target

    def load(self, name: str) -> Any:
        with quiet():
            return self.mlflow.sklearn.load_model(f"models:/{name}@production")

    def list(self, name: str) -> list[Any]:
        return list(self.client.search_model_versions(f"name='{name}'"))
