"""The ``modelversions`` command line, run as a real subprocess against a real folder.

Each test populates a registry folder with the library, runs the installed console
script (or ``python -m modelversions``) on it and checks the output, the exit code
and, through the library, what changed (or, for dry runs, that nothing did).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelversions import (
    ConcurrentUpdateError,
    ModelRegistry,
    ModelVersionsError,
    Status,
    VersionExistsError,
    cli,
)
from modelversions.cli._output import _Out

_BIN = Path(sys.executable).parent / ("modelversions.exe" if os.name == "nt" else "modelversions")
SCRIPT = str(_BIN) if _BIN.exists() else shutil.which("modelversions")
ENTRY_POINTS = {
    "script": [SCRIPT] if SCRIPT else None,
    "module": [sys.executable, "-m", "modelversions"],
}


def _run(
    *args: str,
    registry: Path | str | None = None,
    env_var: Path | str | None = None,
    entry: str = "script",
) -> subprocess.CompletedProcess[str]:
    """Run the command line; ``registry`` is passed as ``--registry`` after the command."""
    command = ENTRY_POINTS[entry]
    if command is None:
        pytest.skip("the modelversions console script is not installed (pip install -e .)")
    environ = {k: v for k, v in os.environ.items() if k not in (cli.ENV_VAR, "NO_COLOR")}
    if env_var is not None:
        environ[cli.ENV_VAR] = str(env_var)
    argv = [*command, *args]
    if registry is not None:
        argv += ["--registry", str(registry)]
    return subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=120)


def _ok(*args: str, **kwargs: Any) -> str:
    proc = _run(*args, **kwargs)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def _fails(code: int, *args: str, **kwargs: Any) -> str:
    """Run a command expected to fail with ``code``; return its one-line error."""
    proc = _run(*args, **kwargs)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and lines[-1].startswith("modelversions"), proc.stderr
    assert ": error: " in lines[-1]
    return lines[-1]


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A registry folder: churn 1.0.0..1.3.0 (production 1.2.0, staging 1.2.0), fraud 1.0.0."""
    root = tmp_path / "registry"
    reg = ModelRegistry(root, user="ana")
    for i, auc in enumerate([0.81, 0.84, 0.86, 0.79]):
        reg.save("churn", {"w": i}, metrics={"auc": auc}, params={"C": i})
    reg.save("fraud", {"w": "f"}, metrics={"f1": 0.7}, description="first fraud model")
    reg.deploy("churn", "1.0.0", reason="first release")
    reg.deploy("churn", "1.1.0")
    reg.deploy("churn", "1.2.0", env="staging")
    reg.deploy("churn", "1.2.0")
    return root


def _reg(path: Path) -> ModelRegistry:
    return ModelRegistry(path)


# ---------------------------------------------------------------------- entry points
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_entry_points(entry: str, path: Path) -> None:
    assert _ok("--version", entry=entry).strip() == "modelversions 0.1.0"
    assert "churn" in _ok("models", registry=path, entry=entry)
    helptext = _ok("--help", entry=entry)
    for word in ("exit codes:", "no rollback target", cli.ENV_VAR, "promote", "prune"):
        assert word in helptext
    assert "exit codes:" in _ok("deploy", "--help", entry=entry)


def test_import_is_light() -> None:
    code = (
        "import sys, modelversions.cli; "
        "print(sorted(m for m in ('joblib', 'numpy', 'fsspec') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------- where the registry is
def test_registry_from_flag_env_var_and_both(path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    ModelRegistry(other).save("solo", 1)
    assert _table(_ok("models", env_var=path))[1][0] == "churn"
    assert _table(_ok("models", registry=other))[1][0] == "solo"
    # The flag wins over the environment variable, before or after the command.
    assert _table(_ok("models", registry=other, env_var=path))[1][0] == "solo"
    assert _table(_ok("--registry", str(other), "models", env_var=path))[1][0] == "solo"
    assert _table(_ok("--json", "list", "churn", "--registry", str(path)))  # mixed order
    assert _table(_ok("--registry", str(other), "--json", "models"))
    assert _table(_ok(f"--registry=file://{other}", "models"))[1][0] == "solo"


def test_missing_registry(tmp_path: Path) -> None:
    error = _fails(cli.EXIT_USAGE, "models")
    assert "--registry" in error and cli.ENV_VAR in error
    missing = tmp_path / "typo"
    assert "does not exist" in _fails(cli.EXIT_NOT_FOUND, "models", registry=missing)
    assert not missing.exists()  # a typo does not create an empty registry
    assert "does not exist" in _fails(cli.EXIT_NOT_FOUND, "models", env_var=missing)


def test_memory_registry_is_empty() -> None:
    assert _ok("models", registry="memory://").strip() == "no models in memory://"
    assert json.loads(_ok("models", "--json", registry="memory://")) == []


# ---------------------------------------------------------------------- reading
def test_models(path: Path) -> None:
    rows = _table(_ok("models", registry=path))
    assert rows[0] == ["MODEL", "VERSIONS", "LATEST", "DEPLOYED"]
    assert rows[1] == ["churn", "4", "1.3.0", "production=1.2.0,", "staging=1.2.0"]
    assert rows[2] == ["fraud", "1", "1.0.0"]
    data = json.loads(_ok("models", "--json", registry=path))
    assert data == [
        {
            "name": "churn",
            "versions": 4,
            "latest": "1.3.0",
            "envs": {"production": "1.2.0", "staging": "1.2.0"},
        },
        {"name": "fraud", "versions": 1, "latest": "1.0.0", "envs": {}},
    ]


def test_list_table(path: Path) -> None:
    out = _ok("list", "churn", registry=path)
    lines = out.splitlines()
    header = lines[0]
    assert header.split() == [
        "VERSION",
        "STATUS",
        "ENVS",
        "CREATED",
        "(UTC)",
        "SIZE",
        "METRICS",
        "NOTE",
    ]
    # Aligned: every row's status starts in the STATUS column.
    column = header.index("STATUS")
    assert [line[column:].split()[0] for line in lines[1:]] == [
        "stable",
        "stable",
        "candidate",
        "candidate",
    ]
    deployed = [line for line in lines[1:] if line.startswith("*")]
    assert len(deployed) == 1
    assert deployed[0].split()[1:4] == ["1.2.0", "candidate", "production,staging"]
    assert "auc=0.86" in deployed[0]


def test_list_json(path: Path) -> None:
    data = json.loads(_ok("list", "churn", "--json", registry=path))
    reg = _reg(path)
    expected = [mv.to_dict() for mv in reg.versions("churn")]
    assert [{k: v for k, v in d.items() if k != "envs"} for d in data] == expected
    assert [d["envs"] for d in data] == [[], [], ["production", "staging"], []]


def test_list_shows_failures_and_pruning(path: Path) -> None:
    reg = _reg(path)
    reg.mark_failed("churn", "1.3.0", reason="auc 0.79", env="staging")
    reg.prune("churn", keep=0)  # 1.0.0 is below the rollback target 1.1.0: pruned
    lines = _ok("list", "churn", registry=path).splitlines()
    assert "artifact pruned" in lines[1]
    assert "failed in staging: auc 0.79" in lines[4]
    assert " failed " in lines[4]


def test_show(path: Path) -> None:
    out = _ok("show", "churn", "v1.2", registry=path)
    fields = dict(line.split(":", 1) for line in out.splitlines())
    fields = {k: v.strip() for k, v in fields.items()}
    assert fields["version"] == "1.2.0"
    assert fields["status"] == "candidate"
    assert fields["deployed in"] == "production, staging"
    assert fields["pruned"] == "no"
    assert json.loads(fields["metrics"]) == {"auc": 0.86}
    assert len(fields["sha256"]) == 64
    fraud = _ok("show", "fraud", "1.0.0", registry=path)
    assert "description:  first fraud model" in fraud
    data = json.loads(_ok("show", "churn", "1.2.0", "--json", registry=path))
    assert data == {
        **_reg(path).get("churn", "1.2.0").to_dict(),
        "envs": ["production", "staging"],
        "signature": {"key_id": None, "status": "unsigned"},
        "format": "joblib",
        "format_info": {},
        "runs_pickled_code": True,
    }
    assert fields["signature"] == "unsigned"
    assert fields["format"] == "joblib (loading runs pickled code)"


def test_current(path: Path) -> None:
    rows = _table(_ok("current", "churn", registry=path))
    assert rows[1][:4] == ["*", "1.2.0", "candidate", "production,staging"]
    assert _ok("current", "fraud", registry=path).strip() == (
        "nothing is deployed in production for fraud"
    )
    assert json.loads(_ok("current", "fraud", "--json", registry=path)) is None
    data = json.loads(_ok("current", "churn", "--env", "staging", "--json", registry=path))
    assert (data["version"], data["envs"]) == ("1.2.0", ["production", "staging"])
    assert "nothing is deployed in qa" in _ok("current", "churn", "--env", "qa", registry=path)


def test_envs(path: Path) -> None:
    rows = _table(_ok("envs", "churn", registry=path))
    assert rows[0] == ["ENV", "VERSION", "STATUS", "CREATED", "(UTC)", "ROLLBACK", "TO"]
    assert [r[:3] + r[-1:] for r in rows[1:]] == [
        ["production", "1.2.0", "candidate", "1.1.0"],
        ["staging", "1.2.0", "candidate", "1.1.0"],
    ]
    data = json.loads(_ok("envs", "churn", "--json", registry=path))
    assert set(data) == {"production", "staging"}
    assert data["staging"]["version"] == "1.2.0"
    assert data["staging"]["rollback_target"] == "1.1.0"
    assert _ok("envs", "fraud", registry=path).strip() == "fraud is not deployed in any env"
    assert json.loads(_ok("envs", "fraud", "--json", registry=path)) == {}


def test_history(path: Path) -> None:
    out = _ok("history", "churn", registry=path)
    rows = _table(out)
    assert rows[0][:4] == ["SEQ", "TIME", "(UTC)", "ACTION"]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(1, 9)]
    assert "1.0.0 -> 1.1.0" in out and "1.0.0 candidate->stable" in out
    assert "first release" in out and "ana@" in out
    staging = _table(_ok("history", "churn", "--env", "staging", registry=path))
    assert [r[0] for r in staging[1:]] == ["7"]
    assert [r[0] for r in _table(_ok("history", "churn", "--limit", "2", registry=path))[1:]] == [
        "7",
        "8",
    ]
    assert [r[0] for r in _table(_ok("history", "churn", "--since", "6", registry=path))[1:]] == [
        "6",
        "7",
        "8",
    ]
    data = json.loads(_ok("history", "churn", "--json", registry=path))
    unsigned = {"key_id": None, "status": "unsigned"}
    assert data == [{**e.to_dict(), "signature": unsigned} for e in _reg(path).history("churn")]
    assert json.loads(_ok("history", "churn", "--json", "--limit", "0", registry=path)) == []


# ---------------------------------------------------------------------- deploy
def test_deploy(path: Path) -> None:
    out = _ok("deploy", "churn", "1.3.0", "--reason", "weekly retrain", registry=path)
    assert out.splitlines() == [
        "deployed churn 1.3.0 to production (replaced 1.2.0)",
        "  1.2.0 is now stable (was candidate)",
    ]
    reg = _reg(path)
    assert str(reg.current("churn").version) == "1.3.0"
    assert reg.get("churn", "1.2.0").status is Status.STABLE
    event = reg.history("churn")[-1]
    assert (event.action, event.reason, event.env) == ("deploy", "weekly retrain", "production")


def test_deploy_to_env_and_json(path: Path) -> None:
    data = json.loads(_ok("deploy", "fraud", "1.0.0", "--env", "eu-1", "--json", registry=path))
    reg = _reg(path)
    assert data["dry_run"] is False
    assert data["event"] == reg.history("fraud")[-1].to_dict()
    assert data["event"]["from_version"] is None
    assert data["deployed"] == reg.get("fraud", "1.0.0").to_dict()
    assert str(reg.current("fraud", env="eu-1").version) == "1.0.0"
    assert reg.current("fraud") is None
    out = _ok("deploy", "fraud", "1.0.0", "--env", "eu-1", registry=path)
    assert "1.0.0 is already deployed there" in out


def test_deploy_dry_run_changes_nothing(path: Path) -> None:
    before = _reg(path).history("churn")
    out = _ok("deploy", "churn", "1.3.0", "--dry-run", registry=path)
    assert out.splitlines() == [
        "would deploy churn 1.3.0 to production (replacing 1.2.0)",
        "  1.2.0 would become stable (was candidate)",
        "dry run: nothing was changed",
    ]
    out = _ok("deploy", "churn", "1.1.0", "--env", "staging", "--dry-run", registry=path)
    assert "1.2.0 would become stable" in out
    _reg(path).mark_stable("churn", "1.2.0")
    before = _reg(path).history("churn")
    out = _ok("deploy", "churn", "1.3.0", "--dry-run", registry=path)
    assert "  1.2.0 keeps its status (stable)" in out.splitlines()
    out = _ok("deploy", "churn", "1.0.0", "--env", "new", "--dry-run", registry=path)
    assert "(nothing was deployed there)" in out
    data = json.loads(_ok("deploy", "churn", "1.3.0", "--dry-run", "--json", registry=path))
    assert data["dry_run"] is True
    assert (data["event"]["from_version"], data["event"]["to_version"]) == ("1.2.0", "1.3.0")
    assert data["event"]["changes"] == []
    assert data["deployed"]["version"] == "1.3.0"
    reg = _reg(path)
    assert reg.history("churn") == before
    assert str(reg.current("churn").version) == "1.2.0"


def test_deploy_of_failed_version_needs_force(path: Path) -> None:
    reg = _reg(path)
    reg.mark_failed("churn", "1.3.0", reason="auc 0.79")
    before = reg.history("churn")
    for extra in ([], ["--dry-run"]):
        error = _fails(cli.EXIT_USAGE, "deploy", "churn", "1.3.0", *extra, registry=path)
        assert "it is failed (auc 0.79); pass --force to deploy it" in error
    assert _reg(path).history("churn") == before
    out = _ok("deploy", "churn", "1.3.0", "--force", "--dry-run", registry=path)
    assert "forced: 1.3.0 stays failed" in out
    assert _reg(path).history("churn") == before
    out = _ok("deploy", "churn", "1.3.0", "--force", registry=path)
    assert out.startswith("deployed churn 1.3.0 to production (replaced 1.2.0); forced")
    event = _reg(path).history("churn")[-1]
    assert event.forced and str(event.to_version) == "1.3.0"


def test_deploy_errors(path: Path) -> None:
    assert "no version 9.0.0" in _fails(cli.EXIT_NOT_FOUND, "deploy", "churn", "9", registry=path)
    assert "no model 'nope'" in _fails(cli.EXIT_NOT_FOUND, "deploy", "nope", "1", registry=path)
    error = _fails(cli.EXIT_USAGE, "deploy", "churn", "1.0.0", "--env", "a b", registry=path)
    assert "invalid env name" in error
    error = _fails(cli.EXIT_USAGE, "deploy", "churn", "one", registry=path)
    assert "Invalid version" in error
    _reg(path).prune("churn", keep=0)
    error = _fails(cli.EXIT_NOT_FOUND, "deploy", "churn", "1.0.0", registry=path)
    assert "pruned" in error


# ---------------------------------------------------------------------- promote, rollback
def test_promote(path: Path) -> None:
    reg = _reg(path)
    reg.deploy("churn", "1.3.0", env="staging")
    out = _ok("promote", "churn", registry=path)
    assert out.splitlines()[0] == "deployed churn 1.3.0 to production (replaced 1.2.0)"
    reg = _reg(path)
    assert str(reg.current("churn").version) == "1.3.0"
    assert reg.history("churn")[-1].reason == "promoted from staging"
    data = json.loads(
        _ok(
            "promote",
            "churn",
            "--from",
            "production",
            "--to",
            "canary",
            "--reason",
            "ok",
            "--json",
            registry=path,
        )
    )
    assert (data["event"]["env"], data["event"]["reason"]) == ("canary", "ok")
    assert data["deployed"]["version"] == "1.3.0"
    error = _fails(cli.EXIT_NOT_FOUND, "promote", "churn", "--from", "qa", registry=path)
    assert "nothing is deployed in 'qa'" in error
    _reg(path).mark_failed("churn", "1.3.0", reason="bad")
    error = _fails(cli.EXIT_USAGE, "promote", "churn", "--to", "eu", registry=path)
    assert "pass --force" in error
    assert "forced" in _ok("promote", "churn", "--to", "eu", "--force", registry=path)


def test_rollback_dry_run_then_rollback(path: Path) -> None:
    before = _reg(path).history("churn")
    out = _ok("rollback", "churn", "--dry-run", "--reason", "auc fell", registry=path)
    assert out.splitlines() == [
        "would roll back churn in production: 1.2.0 -> 1.1.0",
        "  1.2.0 would become failed (was candidate)",
        "dry run: nothing was changed",
    ]
    data = json.loads(_ok("rollback", "churn", "--dry-run", "--json", registry=path))
    assert data["dry_run"] is True and data["deployed"]["version"] == "1.1.0"
    assert _reg(path).history("churn") == before
    out = _ok("rollback", "churn", "--reason", "auc fell", registry=path)
    assert out.splitlines() == [
        "rolled back churn in production: 1.2.0 -> 1.1.0",
        "  1.2.0 is now failed (was candidate)",
    ]
    reg = _reg(path)
    assert str(reg.current("churn").version) == "1.1.0"
    failed = reg.get("churn", "1.2.0")
    assert (failed.status, failed.failure_reason) == (Status.FAILED, "auc fell")
    # staging still runs 1.2.0 (failed now, everywhere): its own chain rolls back too.
    data = json.loads(_ok("rollback", "churn", "--env", "staging", "--json", registry=path))
    assert data["event"] == _reg(path).history("churn")[-1].to_dict()
    assert data["event"]["changes"] == []  # already failed
    assert str(_reg(path).current("churn", env="staging").version) == "1.1.0"


def test_rollback_without_target(path: Path) -> None:
    error = _fails(cli.EXIT_NO_ROLLBACK_TARGET, "rollback", "churn", "--env", "qa", registry=path)
    assert "nothing is deployed there" in error
    _ok("deploy", "fraud", "1.0.0", registry=path)
    before = _reg(path).history("fraud")
    for extra in ([], ["--dry-run"]):
        error = _fails(cli.EXIT_NO_ROLLBACK_TARGET, "rollback", "fraud", *extra, registry=path)
        assert "no stable version below it" in error
    assert _reg(path).history("fraud") == before


# ---------------------------------------------------------------------- statuses
def test_mark_failed_and_stable(path: Path) -> None:
    out = _ok(
        "mark-failed", "churn", "1.2.0", "--reason", "p99 2s", "--env", "staging", registry=path
    )
    assert out.splitlines() == [
        "marked churn 1.2.0 failed: p99 2s",
        "  it is still deployed in production, staging: roll back to replace it",
    ]
    mv = _reg(path).get("churn", "1.2.0")
    assert (mv.status, mv.failed_env, mv.failure_reason) == (Status.FAILED, "staging", "p99 2s")
    data = json.loads(
        _ok("mark-stable", "churn", "1.2.0", "--reason", "fixed", "--json", registry=path)
    )
    assert data == _reg(path).get("churn", "1.2.0").to_dict()
    assert data["status"] == "stable" and data["failure_reason"] is None
    assert _reg(path).history("churn")[-1].reason == "fixed"
    assert _ok("mark-stable", "churn", "1.3.0", registry=path) == "marked churn 1.3.0 stable\n"
    data = json.loads(
        _ok("mark-failed", "fraud", "1.0.0", "--reason", "x", "--json", registry=path)
    )
    assert (data["status"], data["failed_env"]) == ("failed", None)


def test_mark_failed_needs_a_reason(path: Path) -> None:
    proc = _run("mark-failed", "churn", "1.2.0", registry=path)
    assert proc.returncode == cli.EXIT_USAGE
    assert "--reason" in proc.stderr and "Traceback" not in proc.stderr
    error = _fails(cli.EXIT_USAGE, "mark-failed", "churn", "1.2.0", "--reason", " ", registry=path)
    assert "needs a reason" in error
    assert _reg(path).get("churn", "1.2.0").status is Status.CANDIDATE


# ---------------------------------------------------------------------- retention
def test_prune(path: Path) -> None:
    reg = _reg(path)
    reg.deploy("churn", "1.3.0")  # production 1.3.0 (target 1.2.0), staging 1.2.0 (1.1.0)
    before = reg.history("churn")
    out = _ok("prune", "churn", "--keep", "0", "--dry-run", registry=path)
    assert out.splitlines() == [
        "would prune 1 version(s) of churn: 1.0.0",
        "dry run: nothing was changed",
    ]
    assert _reg(path).history("churn") == before
    data = json.loads(
        _ok("prune", "churn", "--keep", "0", "--json", "--reason", "disk", registry=path)
    )
    assert data["dry_run"] is False
    assert [d["version"] for d in data["pruned"]] == ["1.0.0"]
    assert data["pruned"][0]["pruned"] is True
    reg = _reg(path)
    assert reg.get("churn", "1.0.0").pruned
    assert reg.history("churn")[-1].reason == "disk"
    assert _ok("prune", "churn", "--keep", "0", registry=path).strip() == (
        "nothing to prune in churn (keeping the newest 0)"
    )
    assert "yes (artifact deleted)" in _ok("show", "churn", "1.0.0", registry=path)


def test_prune_usage_errors(path: Path) -> None:
    for args in (
        ["prune", "churn"],
        ["prune", "churn", "--keep", "-1"],
        ["prune", "churn", "--keep", "x"],
    ):
        proc = _run(*args, registry=path)
        assert proc.returncode == cli.EXIT_USAGE
        assert "--keep" in proc.stderr and "Traceback" not in proc.stderr


def test_delete(path: Path) -> None:
    error = _fails(cli.EXIT_USAGE, "delete", "churn", "1.2.0", registry=path)
    assert error == (
        "modelversions: error: cannot delete churn 1.2.0: it is deployed in production, staging"
    )
    out = _ok("delete", "churn", "1.3.0", "--reason", "leaked labels", registry=path)
    assert out == "deleted churn 1.3.0 (its history stays)\n"
    reg = _reg(path)
    assert [str(mv.version) for mv in reg.versions("churn")] == ["1.0.0", "1.1.0", "1.2.0"]
    assert reg.history("churn")[-1].reason == "leaked labels"
    data = json.loads(_ok("delete", "churn", "1.0.0", "--json", registry=path))
    assert data["deleted"]["version"] == "1.0.0"
    _fails(cli.EXIT_NOT_FOUND, "delete", "churn", "1.0.0", registry=path)


# ---------------------------------------------------------------------- verify
def test_verify_ok_and_repair(path: Path) -> None:
    assert _ok("verify", registry=path).startswith("OK: 2 models, 5 versions, 5 artifacts")
    orphan = path / "models" / "churn" / "@artifacts" / ("0" * 64 + ".joblib")
    orphan.write_bytes(b"left by a save that died")
    out = _ok("verify", registry=path)
    assert "orphan-artifact" in out and orphan.exists()
    out = _ok("verify", "--repair", registry=path)  # too young to be provable garbage
    assert orphan.exists()
    data = json.loads(_ok("verify", "--repair", "--min-age", "0", "--json", registry=path))
    assert data["ok"] is True
    assert data["removed"] == [f"models/churn/@artifacts/{'0' * 64}.joblib"]
    assert [p["kind"] for p in data["problems"]] == ["orphan-artifact"]
    assert not orphan.exists()


def test_verify_finds_damage(path: Path) -> None:
    mv = _reg(path).get("churn", "1.1.0")
    artifact = path / "models" / "churn" / "@artifacts" / f"{mv.sha256}.joblib"
    artifact.chmod(0o644)  # stored read-only
    artifact.write_bytes(b"bit rot")
    proc = _run("verify", registry=path)
    assert proc.returncode == cli.EXIT_INTEGRITY
    assert proc.stdout.startswith("DAMAGED")
    assert "artifact-damaged: churn 1.1.0" in proc.stdout
    assert proc.stderr.startswith("modelversions: error: verify found damaged data")
    proc = _run("verify", "--json", "--repair", registry=path)
    assert proc.returncode == cli.EXIT_INTEGRITY
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    assert {"kind": "artifact-damaged", "name": "churn", "version": "1.1.0"}.items() <= (
        data["problems"][0].items()
    )
    assert artifact.read_bytes() == b"bit rot"  # repair never removes committed data


# ---------------------------------------------------------------------- error exit codes
def test_not_found_and_bad_input(path: Path) -> None:
    assert "no model 'nope'" in _fails(cli.EXIT_NOT_FOUND, "list", "nope", registry=path)
    error = _fails(cli.EXIT_NOT_FOUND, "show", "churn", "7.0.0", registry=path)
    assert error == (
        "modelversions: error: model 'churn' has no version 7.0.0; "
        "versions: 1.0.0, 1.1.0, 1.2.0, 1.3.0"
    )
    assert "invalid model name" in _fails(cli.EXIT_USAGE, "list", "a//b", registry=path)
    assert "Invalid version" in _fails(cli.EXIT_USAGE, "show", "churn", "x.y", registry=path)
    assert "invalid env name" in _fails(
        cli.EXIT_USAGE, "history", "churn", "--env", "..", registry=path
    )
    proc = _run("frobnicate", registry=path)
    assert proc.returncode == cli.EXIT_USAGE and "invalid choice" in proc.stderr
    proc = _run()
    assert proc.returncode == cli.EXIT_USAGE and "required" in proc.stderr


def test_damaged_history_is_an_integrity_error(path: Path) -> None:
    (path / "models" / "fraud" / "@log" / "000000000001.json").write_bytes(b"{not json")
    error = _fails(cli.EXIT_INTEGRITY, "list", "fraud", registry=path)
    assert "is damaged" in error
    assert "history-damaged" in _run("verify", registry=path).stdout


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs symlinks")
def test_storage_failure(path: Path) -> None:
    # A symlink loop where the next history entry would be: the local backend refuses
    # to follow it, a StorageError naming the link.
    loop = path / "models" / "fraud" / "@log" / "000000000002.json"
    os.symlink(loop.name, loop)
    error = _fails(cli.EXIT_STORAGE, "list", "fraud", registry=path)
    assert "is a symbolic link" in error and "000000000002.json" in error


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConcurrentUpdateError("gave up after 200 attempts"), cli.EXIT_STORAGE),
        (VersionExistsError("already has version 1.0.0"), cli.EXIT_ERROR),
        (ModelVersionsError("something else"), cli.EXIT_ERROR),
    ],
)
def test_other_errors_in_process(
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: Exception,
    code: int,
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(ModelRegistry, "mark_stable", fail)
    assert cli.main(["--registry", str(path), "mark-stable", "churn", "1.0.0"]) == code
    captured = capsys.readouterr()
    assert captured.err == f"modelversions: error: {exc}\n"
    assert captured.out == ""


def test_multi_line_messages_are_one_line(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise ModelVersionsError("first\nsecond")

    monkeypatch.setattr(ModelRegistry, "models", fail)
    assert cli.main(["models", "--registry", str(path)]) == cli.EXIT_ERROR
    # one line: the newline is shown as an escape (it may come from stored text)
    assert capsys.readouterr().err == "modelversions: error: first\\nsecond\n"


# ---------------------------------------------------------------------- output details
def test_status_colors_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    tty = Tty()
    out = _Out(tty, as_json=False)
    out.table(("VERSION", "STATUS", "X"), [["1.0.0", "failed", "a"], ["1.1.0", "stable", "b"]])
    lines = tty.getvalue().splitlines()
    assert lines[1] == "1.0.0    \x1b[31mfailed\x1b[0m  a"
    assert lines[2] == "1.1.0    \x1b[32mstable\x1b[0m  b"
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Tty()
    _Out(plain, as_json=False).table(("STATUS",), [["failed"]])
    assert "\x1b" not in plain.getvalue()
    piped = io.StringIO()
    monkeypatch.delenv("NO_COLOR")
    _Out(piped, as_json=False).table(("STATUS",), [["failed"]])
    assert "\x1b" not in piped.getvalue()


def test_show_says_the_format_and_whether_loading_runs_code(tmp_path: Path) -> None:
    import numpy as np

    reg = ModelRegistry(tmp_path / "reg")
    reg.save("arrays", {"w": np.arange(3)}, serializer="npz")
    reg.save("squeezed", {"w": 1}, compress=3)
    src = tmp_path / "model"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"x" * 2048)
    reg.save("folder", path=src)
    where = tmp_path / "reg"
    assert "format:       npz (no code runs on load)" in _ok(
        "show", "arrays", "1.0.0", registry=where
    )
    assert "joblib, compress=3 (loading runs pickled code)" in _ok(
        "show", "squeezed", "1.0.0", registry=where
    )
    shown = _ok("show", "folder", "1.0.0", registry=where)
    assert "path (dir, 1 files, 2.0 KiB); load_path() returns it, no code runs" in shown
    data = json.loads(_ok("show", "folder", "1.0.0", "--json", registry=where))
    assert (data["format"], data["runs_pickled_code"]) == ("path", False)
    assert data["format_info"] == {"kind": "dir", "files": 1, "bytes": 2048}
