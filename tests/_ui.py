"""Helpers of the web view's tests: the scenario registry and running ``modelversions ui``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from modelversions import DeployCheckFailedError, ModelRegistry

NAME = "team/churn"  # a name with "/", as the page and the API must encode it
HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '"onmouseover="window.__pwned=2" x="',
    '<img src=x onerror="window.__pwned=3">',
]


def _check_fails(model: object) -> None:
    raise ValueError("accuracy dropped")


def build(reg: ModelRegistry, *, pause: float = 0.0) -> None:
    """1.0.0..1.3.0 of NAME, deploys to production and staging, a rollback and a failed
    guarded deploy; hostile text in every name-safe field; a second, plain model."""
    for i in range(4):
        reg.save(
            NAME,
            {"w": i},
            metrics={"auc": 0.70 + i / 100, "loss": 1.0 - i / 10, HOSTILE[0]: i},
            tags={HOSTILE[1]: HOSTILE[2]},
            description=HOSTILE[i % len(HOSTILE)],
        )
    steps = [
        lambda: reg.deploy(NAME, "1.0.0", env="staging"),
        lambda: reg.deploy(NAME, "1.0.0", env="production"),
        lambda: reg.deploy(NAME, "1.1.0", env="production", reason=HOSTILE[1]),
        lambda: reg.deploy(NAME, "1.2.0", env="production"),
        lambda: reg.rollback(NAME, env="production", reason=HOSTILE[0]),
        lambda: reg.deploy(NAME, "1.1.0", env="staging"),
    ]
    for step in steps:
        step()
        time.sleep(pause)
    with suppress(DeployCheckFailedError):
        reg.deploy(NAME, "1.3.0", env="production", check=_check_fails)
    reg.save("plain", {"w": 0})


def env_for_child() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, environ.get("PYTHONPATH")]))
    environ.pop("MODELVERSIONS_REGISTRY", None)
    return environ


@contextmanager
def ui_process(registry: str | Path, *extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``modelversions ui --port 0`` as a subprocess: yields (its printed URL, the process);
    stopped by its pid afterwards."""
    argv = [sys.executable, "-m", "modelversions", "--registry", str(registry), "ui"]
    proc = subprocess.Popen(
        [*argv, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for_child(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://\S+/)", line)
        assert match, f"no URL printed: {line!r}"
        yield match.group(1), proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
