"""The test S3 server applies each conditional write atomically, as S3 does.

``python -m moto.server`` serves each connection in its own thread and moto checks
``If-None-Match: *`` and then stores the object with nothing in between, so with
frequent thread switches two racing creators could both be told "created" (and a
save acknowledged to its caller could be lost). The suite runs moto through
``_s3server.serve``, which handles one request at a time. Here a server of that kind
is started with the interpreter's thread switch interval forced down to 1 µs, and
creators race on the same keys round after round: each round must have exactly one
winner, whose bytes are the ones stored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _s3server
import pytest

from modelversions.backends.s3 import S3Backend

SWITCH_INTERVAL = "1e-6"  # seconds, in the server process (Python's default is 5 ms)


@pytest.fixture(scope="module")
def server() -> Iterator[_s3server.S3Server]:
    """A server of our own, switching threads as often as the interpreter can."""
    srv = _s3server.S3Server("--switch-interval", SWITCH_INTERVAL)
    srv.start()
    try:
        yield srv
    finally:
        if srv.external:
            srv.remove_buckets()
        srv.stop()


def test_threads_racing_to_create_one_key_have_one_winner_each_round(
    server: _s3server.S3Server, tmp_path: Path
) -> None:
    rounds, threads = 200, 8
    bucket = server.make_bucket(_s3server.unique_name(tmp_path, "atomic"))
    backend = S3Backend(f"s3://{bucket}/race", **server.storage_options)
    backend.list("")  # connect before the race
    barrier = threading.Barrier(threads)
    won: list[list[bool]] = [[False] * threads for _ in range(rounds)]
    errors: list[BaseException] = []

    def creator(i: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(timeout=60)
                try:
                    backend.create(f"k/{r}", f"{r}:{i}".encode())
                except FileExistsError:
                    continue
                won[r][i] = True
        except BaseException as exc:  # reported below; the barrier frees the others
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=creator, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    bad = {r: [i for i in range(threads) if won[r][i]] for r in range(rounds)}
    bad = {r: winners for r, winners in bad.items() if len(winners) != 1}
    assert bad == {}, f"rounds without exactly one winner (round: winners): {bad}"
    for r in range(rounds):  # the winner's bytes are what is stored
        assert backend.read(f"k/{r}") == f"{r}:{won[r].index(True)}".encode()
    backend.close()


def test_processes_racing_to_save_one_version_have_one_winner_each_round(
    server: _s3server.S3Server, tmp_path: Path
) -> None:
    rounds = 25
    bucket = server.make_bucket(_s3server.unique_name(tmp_path, "atomicp"))
    url, options = f"s3://{bucket}/reg", server.storage_options
    reg = _s3server.check_explicit_race(url, options, rounds)
    report = reg.verify()
    assert report.ok, str(report)


def test_the_server_serves_concurrent_connections(
    server: _s3server.S3Server, tmp_path: Path
) -> None:
    """One request at a time, not one connection: an idle keep-alive connection (or a
    client between requests) blocks nobody."""
    import http.client
    from urllib.parse import urlsplit

    bucket = server.make_bucket(_s3server.unique_name(tmp_path, "atomicc"))
    parts = urlsplit(server.url)
    idle = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    idle.connect()  # opened, never used until the end
    try:
        backend = S3Backend(f"s3://{bucket}/x", **server.storage_options)
        backend.create("a", b"1")
        assert backend.read("a") == b"1"
        results: list[Any] = []
        workers = [
            threading.Thread(target=lambda i=i: results.append(backend.create(f"b{i}", b"2")))
            for i in range(4)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        assert len(results) == 4
        idle.request("GET", "/moto-api/")
        assert idle.getresponse().status == 200
    finally:
        idle.close()
