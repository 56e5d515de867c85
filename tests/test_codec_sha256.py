"""``_codec.sha256``: CPython's builtin sha256 for a process's first 256 KiB, hashlib's
(OpenSSL) after; the same digests either way, so seals and the hash chain do not change."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from modelversions import _codec


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_codec, "_budget", _codec._BUILTIN_BUDGET)


@pytest.mark.usefixtures("budget")
@pytest.mark.parametrize("size", [0, 1, 64, 5_000, _codec._BUILTIN_BUDGET, 3_000_000])
def test_the_digest_is_hashlibs(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert _codec.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    digest = _codec.sha256(data[:7], size=size)  # the way check_seal hashes
    digest.update(memoryview(data)[7:])
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.usefixtures("budget")
def test_the_builtin_hashes_only_the_first_bytes() -> None:
    if _codec._builtin_sha256 is None:  # pragma: no cover (no builtin: hashlib throughout)
        assert type(_codec.sha256(b"x")) is type(hashlib.sha256())
        return
    builtin = type(_codec._builtin_sha256())
    assert type(_codec.sha256(b"x" * 1000)) is builtin
    assert type(_codec.sha256(b"", size=_codec._BUILTIN_BUDGET)) is not builtin  # too big
    assert type(_codec.sha256(b"x")) is not builtin  # and hashlib from then on
    assert _codec._budget == 0


def test_reading_a_small_history_does_not_import_hashlib() -> None:
    code = (
        "import sys\n"
        "from modelversions import _codec\n"
        "data = _codec.encode({'schema': _codec.SCHEMA, 'x': 1})\n"
        "assert _codec.decode(data, 'x') == {'schema': 1, 'x': 1}\n"
        "_codec.entry_sha256(data)\n"
        "print('hashlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
