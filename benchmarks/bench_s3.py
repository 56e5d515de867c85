"""The registry on S3: latency and request count of each operation, on a local moto server.

Run ``python benchmarks/bench_s3.py`` (about a minute) or ``--quick`` (seconds). It
starts moto (``tests/_s3server.py``, requests atomic) on a free port of 127.0.0.1 (or uses
``--endpoint URL``), then prints one table: for each operation the median, min and
max latency and the number of S3 requests it sent (counted by the backend, retries
included). Operations:

* ``save`` of a small model, measured over every save that builds the history
  (1,000 versions; 100 with ``--quick``);
* ``deploy`` and ``rollback``, alternating (a rollback returns to the previous stable);
* ``load`` of the deployed model without a cache, with a cold cache and a warm one;
* ``versions()`` and ``current()`` from a cold registry (a new process, say) and
  ``current()`` from a warm one, with 1,000 versions in the history;
* ``save`` and ``load`` of a 64 MiB numpy model (multipart upload, streamed read).

Latencies on moto are those of a Python server on this machine (a few ms per request);
on a real store each request costs its round trip, so the request counts are the
figures that carry over.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmark the checkout this script belongs to

from modelversions import ModelRegistry  # noqa: E402
from modelversions.backends.s3 import S3Backend  # noqa: E402

MiB = 1 << 20


@contextmanager
def moto_server() -> Iterator[str]:
    """Start moto on a free port of 127.0.0.1; stop it by its pid at the end.

    Runs the tests' server (``tests/_s3server.py``): moto's S3 with each request handled
    under one lock, so conditional writes are atomic as on S3 (plain ``python -m
    moto.server`` lets two racing ``If-None-Match`` PUTs both succeed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "_s3server.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


class Recorder:
    """Latency and request count of each call, per operation name."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[float, int]]] = {}

    def measure(self, op: str, backend: S3Backend, fn: Callable[[], Any]) -> Any:
        before = sum(backend.requests.values())
        t0 = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - t0
        self.rows.setdefault(op, []).append((elapsed, sum(backend.requests.values()) - before))
        return result

    def table(self) -> str:
        lines = [
            "| operation | n | median ms | min ms | max ms | requests (median, max) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for op, samples in self.rows.items():
            times = [t * 1e3 for t, _ in samples]
            reqs = [r for _, r in samples]
            lines.append(
                f"| {op} | {len(samples)} | {statistics.median(times):.1f} | {min(times):.1f} "
                f"| {max(times):.1f} | {statistics.median(reqs):g}, {max(reqs)} |"
            )
        return "\n".join(lines)


def run(endpoint: str, *, versions: int, cycles: int, big: int) -> Recorder:
    import numpy as np

    opts = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}
    bucket = f"mv-bench-{os.getpid()}-{int(time.time())}"
    S3Backend(f"s3://{bucket}", **opts).fs.mkdir(bucket)
    url = f"s3://{bucket}/reg"
    rec = Recorder()

    def registry(**kwargs: Any) -> tuple[ModelRegistry, S3Backend]:
        backend = S3Backend(url, **opts)
        return ModelRegistry(backend, **kwargs), backend

    reg, backend = registry()
    reg.save("warmup", {"w": 0})  # client creation and imports outside the timings
    rng = np.random.default_rng(0)
    for i in range(versions):
        model = {"coef": rng.random((3, 4)), "i": i}
        rec.measure("save (small model)", backend, lambda m=model: reg.save("m", m))

    order = [str(mv.version) for mv in reg.versions("m")]
    reg.deploy("m", order[0])
    for i in range(1, min(cycles + 1, len(order))):
        rec.measure("deploy", backend, lambda v=order[i]: reg.deploy("m", v))
        rec.measure("rollback", backend, lambda: reg.rollback("m"))

    for _ in range(cycles):
        rec.measure("load (deployed, no cache)", backend, lambda: reg.load("m"))
    with tempfile.TemporaryDirectory(prefix="mv-bench-cache-") as cache:
        for _ in range(cycles):
            shutil.rmtree(cache)
            creg, cbackend = registry(cache_dir=cache)
            rec.measure("load (cold cache, cold registry)", cbackend, lambda r=creg: r.load("m"))
            rec.measure("load (warm cache)", cbackend, lambda r=creg: r.load("m"))

    n = f"{versions} versions"
    for _ in range(cycles):
        creg, cbackend = registry()
        rec.measure(f"versions() cold, {n}", cbackend, lambda r=creg: r.versions("m"))
        creg, cbackend = registry()
        rec.measure(f"current() cold, {n}", cbackend, lambda r=creg: r.current("m"))
        rec.measure(f"current() warm, {n}", cbackend, lambda r=creg: r.current("m"))

    array = np.random.default_rng(1).standard_normal(big // 8)
    for i in range(3):
        array[0] = i  # distinct content: no dedupe
        rec.measure(f"save ({big // MiB} MiB model)", backend, lambda: reg.save("big", array))
    for _ in range(3):
        rec.measure(f"load ({big // MiB} MiB model)", backend, lambda: reg.load("big", "1.0.0"))

    assert backend.uploads() == [], "a multipart upload was left open"
    return rec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--endpoint", help="an S3 endpoint URL instead of starting moto")
    args = parser.parse_args(argv)
    sizes = (
        {"versions": 100, "cycles": 5, "big": 16 * MiB}
        if args.quick
        else {"versions": 1000, "cycles": 20, "big": 64 * MiB}
    )
    t0 = time.perf_counter()
    if args.endpoint:
        rec = run(args.endpoint, **sizes)
    else:
        with moto_server() as endpoint:
            rec = run(endpoint, **sizes)
    print(rec.table())
    print(
        f"\nmoto on 127.0.0.1; {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; run took {time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
