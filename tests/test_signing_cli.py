"""The command line with signing keys: --signing-key-file, the environment variable,
--verify-key-file, ``attest``, what ``show`` and ``history --json`` say about
signatures, and exit code 5 naming the file for a wrong key or an unsigned entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelversions import ModelRegistry, _state, cli, key_id
from modelversions.signing import ENV_KEY

KEY = "s" * 32
OTHER = "o" * 32


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_text(KEY + "\n")  # the trailing newline is not part of the key
    return path


def test_signed_registry_from_the_command_line(
    tmp_path: Path, keyfile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "reg"
    ModelRegistry(root, signing_key=KEY).save("m", 1)
    base = ("--registry", str(root), "--signing-key-file", str(keyfile))
    code, out, _ = _main(capsys, *base, "deploy", "m", "1.0.0")
    assert code == 0
    code, out, _ = _main(capsys, *base, "show", "m", "1.0.0", "--json")
    assert json.loads(out)["signature"] == {"key_id": key_id(KEY), "status": "signed"}
    code, out, _ = _main(capsys, *base, "show", "m", "1.0.0")
    assert f"signed (key id {key_id(KEY)})" in out
    code, out, _ = _main(capsys, *base, "history", "m", "--json")
    assert [e["signature"]["status"] for e in json.loads(out)] == ["signed", "signed"]
    # Without a key the claimed key id is shown, unverified.
    code, out, _ = _main(capsys, "--registry", str(root), "history", "m", "--json")
    assert {e["signature"]["status"] for e in json.loads(out)} == {"unverified"}
    # A wrong key: exit 5, the file named.
    wrong = tmp_path / "wrong"
    wrong.write_text(OTHER)
    code, _, err = _main(
        capsys, "--registry", str(root), "--signing-key-file", str(wrong), "current", "m"
    )
    assert code == cli.EXIT_INTEGRITY
    assert _state.log_key("m", 1) in err and key_id(KEY) in err
    # ... unless the right one is listed to verify with.
    code, out, _ = _main(
        capsys,
        *("--registry", str(root), "--signing-key-file", str(wrong)),
        *("--verify-key-file", str(keyfile), "current", "m", "--json"),
    )
    assert code == 0 and json.loads(out)["version"] == "1.0.0"


def test_attest_and_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "reg"
    ModelRegistry(root).save("m", 1)
    monkeypatch.setenv(ENV_KEY, KEY)
    code, _, err = _main(capsys, "--registry", str(root), "list", "m")
    assert code == cli.EXIT_INTEGRITY and _state.log_key("m", 1) in err and "not signed" in err
    code, out, _ = _main(capsys, "--registry", str(root), "attest", "m")
    assert code == 0 and "entries 1..1 are covered by entry 2" in out
    code, out, _ = _main(capsys, "--registry", str(root), "history", "m", "--json")
    assert [e["signature"]["status"] for e in json.loads(out)] == ["attested", "signed"]
    code, out, _ = _main(capsys, "--registry", str(root), "verify")
    assert code == 0


def test_bad_key_files_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "reg"
    ModelRegistry(root).save("m", 1)
    short = tmp_path / "short"
    short.write_text("too short\n")
    for path, text in ((tmp_path / "missing", "cannot read the key file"), (short, "32 bytes")):
        code, _, err = _main(
            capsys, "--registry", str(root), "--signing-key-file", str(path), "models"
        )
        assert code == cli.EXIT_USAGE and text in err
        assert "too short" not in err  # the key is never printed
