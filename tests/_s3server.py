"""An S3 endpoint for the tests: a moto server on 127.0.0.1, or one named by the environment.

By default the first test that needs S3 starts moto's S3 on a free port of 127.0.0.1
(about half a second) with :func:`serve` (this file run as a script); the session
fixture in ``conftest.py`` stops it by its process id at the end.

Why not ``python -m moto.server``: it serves each connection in its own thread, and
moto checks ``If-None-Match``/``If-Match`` and then stores the object with no lock
between, so under thread switching two racing conditional ``PUT`` requests can both
succeed (S3 applies each request atomically). :func:`serve` runs the same moto
application with one lock held while a request is handled, so every request is
atomic, as on S3; ``tests/test_s3_atomic.py`` checks that under a forced short thread
switch interval.

Set ``MODELVERSIONS_S3_ENDPOINT`` (e.g.
``http://127.0.0.1:9000`` for a MinIO) to run the same tests against another store;
``MODELVERSIONS_S3_KEY`` and ``MODELVERSIONS_S3_SECRET`` give its credentials
(default ``testing``/``testing``). Every test gets its own bucket; on an external
endpoint the buckets are emptied and removed at the end of the session.

Child-process code for ``test_s3_concurrency.py`` lives here too (importable by name
for the ``spawn`` start method).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from _workers import run_together

__all__ = ["run_together"]  # the shared spawn-and-barrier helper, re-exported for S3 tests

ENV_ENDPOINT = "MODELVERSIONS_S3_ENDPOINT"
ENV_KEY = "MODELVERSIONS_S3_KEY"
ENV_SECRET = "MODELVERSIONS_S3_SECRET"
STARTUP_GUARD = 30.0  # seconds to wait for moto to answer (a guard, not a measure)
HANG_GUARD = 300.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class S3Server:
    """An S3 endpoint: a moto subprocess we own, or an external one."""

    def __init__(self, *server_args: str) -> None:
        #: Extra options for :func:`serve` (``--switch-interval``, ``--no-lock``).
        self.server_args = server_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.external = bool(os.environ.get(ENV_ENDPOINT))
        self.url = os.environ.get(ENV_ENDPOINT, "")
        self.buckets: set[str] = set()
        self._lock = threading.Lock()
        self._log: Any = None

    @property
    def storage_options(self) -> dict[str, Any]:
        """What ``ModelRegistry(..., storage_options=...)`` needs to reach this endpoint."""
        return {
            "key": os.environ.get(ENV_KEY, "testing"),
            "secret": os.environ.get(ENV_SECRET, "testing"),
            "client_kwargs": {"endpoint_url": self.url},
        }

    def start(self) -> None:
        if self.external:
            return
        import moto  # noqa: F401  (fail early with a clear ImportError)

        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_EC2_METADATA_DISABLED="true",
            MOTO_CALL_RESET_API="false",
        )
        for _attempt in range(3):
            port = _free_port()
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - kept until stop()
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--port", str(port), *self.server_args],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            self.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + STARTUP_GUARD
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1) as resp:
                        if resp.status == 200:
                            return
                except OSError:
                    time.sleep(0.05)
            self.stop()  # port taken or too slow: try another port
        raise RuntimeError("the moto S3 server did not start")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def filesystem(self) -> Any:
        """An ``s3fs.S3FileSystem`` on this endpoint (the one S3Backend shares)."""
        from modelversions.backends.s3 import S3Backend

        return S3Backend("s3://any", **self.storage_options).fs

    def make_bucket(self, name: str) -> str:
        with self._lock:
            if name in self.buckets:
                return name
            fs = self.filesystem()
            with contextlib.suppress(FileExistsError):
                fs.mkdir(name)
            self.buckets.add(name)
        return name

    def remove_buckets(self) -> None:
        """Empty and remove the buckets this session made (external endpoints)."""
        from modelversions.backends.s3 import S3Backend

        for name in sorted(self.buckets):
            backend = S3Backend(f"s3://{name}", **self.storage_options)
            with contextlib.suppress(OSError):
                backend.cleanup(min_age=0)
                for key in backend.list(""):
                    backend.delete(key)
                backend.fs.rmdir(name)
            backend.close()
        self.buckets.clear()


_server: S3Server | None = None
_server_lock = threading.Lock()


def server() -> S3Server:
    """The session's endpoint, started on first use."""
    global _server
    with _server_lock:
        if _server is None:
            srv = S3Server()
            srv.start()
            _server = srv
        return _server


def shutdown() -> None:
    """Stop moto (or clean the buckets of an external endpoint), if it was used."""
    global _server
    with _server_lock:
        srv, _server = _server, None
    if srv is None:
        return
    if srv.external:
        srv.remove_buckets()
    srv.stop()


def unique_name(tmp_path: Path, prefix: str = "mv") -> str:
    """A bucket-safe name derived from a test's ``tmp_path`` (so reopening finds it)."""
    digest = hashlib.sha1(str(tmp_path).encode()).hexdigest()[:20]
    return f"{prefix}-{digest}"


def new_bucket(tmp_path: Path, suffix: str = "") -> str:
    return server().make_bucket(unique_name(tmp_path) + suffix)


def backend_for(tmp_path: Path) -> Any:
    """The ``BACKENDS["s3"]`` factory: a registry prefix in this test's own bucket."""
    from modelversions.backends import open_backend

    srv = server()
    bucket = new_bucket(tmp_path)
    return open_backend(f"s3://{bucket}/registry", **srv.storage_options)


# ---------------------------------------------------------------------- child processes
def _registry(url: str, options: dict[str, Any]) -> Any:
    from modelversions import ModelRegistry

    return ModelRegistry(url, storage_options=options)


def save_many(barrier: Barrier, url: str, options: dict[str, Any], n: int, tag: int) -> list[str]:
    """Save ``n`` distinct small models with automatic versions; return the versions."""
    reg = _registry(url, options)
    reg.models()  # connect before the race
    barrier.wait()
    return [
        str(reg.save("m", {"tag": tag, "i": i}, tags={"tag": tag, "i": i}).version)
        for i in range(n)
    ]


def race_explicit(
    barrier: Barrier, url: str, options: dict[str, Any], rounds: int, tag: int
) -> list[bool]:
    """Each round, every process saves version ``<round>.0.0``; return who won."""
    from modelversions import VersionExistsError

    reg = _registry(url, options)
    reg.models()
    won = []
    for r in range(1, rounds + 1):
        barrier.wait()
        try:
            reg.save("m", {"round": r, "tag": tag}, f"{r}.0.0", tags={"tag": tag})
        except VersionExistsError:
            won.append(False)
        else:
            won.append(True)
    barrier.wait()
    return won


def check_explicit_race(url: str, options: dict[str, Any], rounds: int) -> Any:
    """Race 8 processes on :func:`race_explicit`; check one winner per round whose save
    is the one stored, and a history of one save per round. Return the registry."""
    from modelversions import ModelRegistry

    results = run_together(race_explicit, [(url, options, rounds, tag) for tag in range(8)])
    reg = ModelRegistry(url, storage_options=options)
    for r in range(rounds):
        winners = [tag for tag, won in enumerate(results) if won[r]]
        assert len(winners) == 1, f"round {r + 1}: winners {winners}"
        mv = reg.get("m", f"{r + 1}.0.0")
        assert mv.tags == {"tag": winners[0]}
        assert reg.load("m", mv.version) == {"round": r + 1, "tag": winners[0]}
    assert [e.action for e in reg.history("m")] == ["save"] * rounds
    return reg


def deploy_rollback(
    barrier: Barrier, url: str, options: dict[str, Any], n: int, seed: int
) -> dict[str, int]:
    """Random deploys (forced) and rollbacks of model ``m``; count the outcomes."""
    from modelversions import NoRollbackTargetError

    reg = _registry(url, options)
    rng = random.Random(seed)
    versions = [str(mv.version) for mv in reg.versions("m")]
    counts: dict[str, int] = {}
    barrier.wait()
    for _ in range(n):
        if rng.random() < 0.55:
            reg.deploy("m", rng.choice(versions), force=True, reason=f"seed {seed}")
            op = "deploy"
        else:
            try:
                reg.rollback("m", reason=f"seed {seed}")
                op = "rollback"
            except NoRollbackTargetError:
                reg.mark_stable("m", rng.choice(versions[:3]))
                op = "restabilize"
        counts[op] = counts.get(op, 0) + 1
    return counts


def save_and_hang(url: str, options: dict[str, Any], size: int, marker: str) -> None:
    """Save a large model; after its first part is uploaded, write ``marker`` and hang.

    The parent kills this process there: a save dies mid-upload.
    """
    import numpy as np

    reg = _registry(url, options)
    reg.models()  # connect, so that the hook below can be installed on the client

    def hang(**_kwargs: Any) -> None:
        Path(marker).write_text("uploading")
        time.sleep(HANG_GUARD)

    reg.backend.fs.s3.meta.events.register("after-call.s3.UploadPart", hang)
    reg.save("big", np.arange(size // 8, dtype=np.int64))


# ---------------------------------------------------------------------- the server process
def serve(host: str, port: int, *, atomic: bool = True, switch_interval: float = 0.0) -> None:
    """Serve moto's S3 on ``host:port`` until SIGTERM; each request atomic if ``atomic``.

    Connections keep their own threads (an idle keep-alive connection blocks nobody);
    with ``atomic`` one lock is held from the moment moto starts handling a request
    until its whole response is produced, so a conditional write's check and its store
    cannot interleave with another request. ``atomic=False`` is what
    ``python -m moto.server`` does. ``switch_interval`` (seconds, when positive) is
    passed to :func:`sys.setswitchinterval`, to make thread switches frequent in tests.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            result = app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]

    if switch_interval > 0:
        sys.setswitchinterval(switch_interval)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    httpd = make_server(host, port, one_at_a_time if atomic else app, threaded=True)
    httpd.serve_forever()


def _main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="moto's S3 for the tests (see serve()).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--switch-interval", type=float, default=0.0)
    parser.add_argument(
        "--no-lock", action="store_true", help="serve like python -m moto.server (racy)"
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, atomic=not args.no_lock, switch_interval=args.switch_interval)


if __name__ == "__main__":
    _main(sys.argv[1:])
