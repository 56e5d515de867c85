"""The MLflow adapter: MLflow 3 embedded, and its equivalent of each operation measured.

Owns everything MLflow: telemetry off (``telemetry_off``, also for the fresh processes
that import it), silencing its output while it is timed (``quiet``), the embedded set-up
(a sqlite tracking and registry store, local artifacts, explicit ``pip_requirements``
and ``serialization_format="pickle"``) and ``MLflowPeer``, whose methods do what the
modelversions call they are compared with does (``deploy_equivalent``,
``mark_failed_equivalent``, ``rollback`` by hand) or only its single call (``deploy``,
``mark``), and both ways to register a version: a run with ``log_model`` (``log_register``)
and the lightest path, ``save_model`` + ``create_model_version`` without a run
(``save_register``). ``mlflow`` is imported when a peer is built, never at import time.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any


def durability_note(version: str) -> str:
    """What MLflow makes durable, and what it does not (read from its sources)."""
    return (
        f"Durability. MLflow {version} does not fsync its artifacts: `mlflow.sklearn."
        "save_model` writes the pickle with `open()` + `pickle.dump` and "
        "`log_model` copies the folder into the artifact store with `shutil.copy2` "
        "(`LocalArtifactRepository.log_artifacts` -> `shutil_copytree_without_file_"
        "permissions`); no `os.fsync` call appears in the `mlflow` package outside a "
        "migration tool (`store/fs2db`, which turns sqlite's sync off). Its sqlite store "
        "is synced by SQLite itself (MLflow sets no `synchronous` pragma, so SQLite's "
        "default FULL applies). After a power loss MLflow can therefore hold a registered "
        "version whose model file is empty or partial. modelversions fsyncs the artifact, "
        "its folder and every history entry before a call returns (`durable=True`, the "
        "default). The `modelversions, durable=False` rows (`LocalBackend(path, "
        "durable=False)`: no fsync, still atomic renames and links) show what that "
        "durability costs, to compare like with like."
    )


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

    def __init__(self, root: Path, *, registry_only: bool = False) -> None:
        """``registry_only``: a client on its own database, MLflow's globals untouched."""
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
        self.uri = uri
        if not registry_only:
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            with quiet():
                experiment = mlflow.create_experiment(
                    "bench", artifact_location=(root / "artifacts").as_uri()
                )
                mlflow.set_experiment(experiment_id=experiment)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.root = root
        self.saved = 0  # folders written by save_register
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

    def save_register(self, name: str, model: Any) -> str:
        """The lightest path: ``save_model`` into a folder, ``create_model_version`` of it.

        No run, no artifact copy: the version's source is the folder itself. Creates the
        registered model on first use (not timed by callers that warm up first).
        """
        mlflow, client = self.mlflow, self.client
        self.saved += 1
        path = self.root / "saved" / f"{name}-{self.saved}"
        with quiet():
            mlflow.sklearn.save_model(
                model,
                str(path),
                pip_requirements=self.requirements,
                serialization_format="pickle",
            )
            try:
                mv = client.create_model_version(name, source=str(path), await_creation_for=0)
            except mlflow.exceptions.MlflowException:  # no registered model of that name yet
                client.create_registered_model(name)
                mv = client.create_model_version(name, source=str(path), await_creation_for=0)
        return str(mv.version)

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
