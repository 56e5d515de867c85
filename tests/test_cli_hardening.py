"""The command line against hostile stored text and numbers, and what a failed check says.

Stored text (reasons, descriptions, tags, metric keys, params, users, hosts, failure
reasons) is whatever some writer put there: printed raw, a newline forges table rows
and ``ESC [2J`` clears the reader's screen. Every line the command line prints must
be one line of printable characters with those shown as escapes; ``--json`` keeps
the exact values (``json.dumps`` escapes them by the JSON rules).
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelversions import DeployCheckFailedError, ModelRegistry, Status, _commit, cli
from modelversions.cli._commands import cmd_show
from modelversions.cli._output import _Out, _safe

# A newline, a carriage return, a tab, ESC clearing the screen, a right-to-left
# override, a line separator, a C1 control (NEL), a zero-width space.
EVIL = "ok\nFAKE 9.9.9 stable\x1b[2J\r\u202eevil\u2028x\x85\t\u200by"
SHOWN = r"ok\nFAKE 9.9.9 stable\x1b[2J\r\u202eevil\u2028x\x85\t\u200by"


def _printable_lines(text: str) -> list[str]:
    """The lines of ``text``; each must be free of control and format characters."""
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    for line in lines:
        assert line.isprintable(), repr(line)
    return lines


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry whose every free-text field holds ``EVIL``.

    1.0.0 carries the text in its metrics, params, tags and description, and is
    marked failed with it; 1.1.0 is deployed with it as the reason, by a user and on a
    host named with it.
    """
    monkeypatch.setattr(_commit, "host_name", lambda: "host" + EVIL)  # what Log records
    folder = tmp_path / "registry"
    reg = ModelRegistry(folder, user="user" + EVIL)
    reg.save(
        "m",
        {"w": 1},
        metrics={EVIL: 1.0},
        params={"p": EVIL},
        tags={EVIL: EVIL},
        description=EVIL,
    )
    reg.save("m", {"w": 2}, metrics={"auc": 0.5})
    reg.deploy("m", "1.0.0", reason=EVIL)
    reg.deploy("m", "1.1.0", reason=EVIL)
    reg.mark_failed("m", "1.0.0", reason=EVIL, env="production")
    reg.close()
    return folder


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_shows_one_row_per_version(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main(capsys, "list", "m", "--registry", str(path))
    assert (code, err) == (0, "")
    lines = _printable_lines(out)
    assert len(lines) == 3  # the header and two versions: no forged row
    assert lines[1].split()[0] == "1.0.0"
    assert lines[2].split()[:2] == ["*", "1.1.0"]
    assert "FAKE" not in lines[2]
    assert r"ok\nFAKE" in lines[1]  # the metric key (truncated) and the failure reason
    assert lines[1].endswith("failed in production: " + SHOWN)


def test_current_row_is_escaped(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ModelRegistry(path).deploy("m", "1.0.0", force=True)
    code, out, _ = _main(capsys, "current", "m", "--registry", str(path))
    assert code == 0
    lines = _printable_lines(out)
    assert len(lines) == 2
    assert lines[1].endswith(SHOWN)


def test_show_escapes_every_field(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main(capsys, "show", "m", "1.0.0", "--registry", str(path))
    assert (code, err) == (0, "")
    lines = _printable_lines(out)
    fields = dict(line.split(":", 1) for line in lines)
    assert len(fields) == len(lines)  # every line is a "label: value" line
    assert fields["failure"].strip() == SHOWN
    assert fields["description"].strip() == SHOWN
    assert json.loads(fields["tags"]) == {EVIL: EVIL}  # JSON-escaped, exact
    assert json.loads(fields["params"]) == {"p": EVIL}
    assert json.loads(fields["metrics"]) == {EVIL: 1.0}


def test_history_shows_one_row_per_event(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(capsys, "history", "m", "--registry", str(path))
    assert code == 0
    lines = _printable_lines(out)
    assert len(lines) == 1 + 5  # two saves, two deploys, one mark_failed
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4", "5"]
    for line in lines[1:]:
        assert f"user{SHOWN}@host{SHOWN}" in line
    for line in lines[3:]:
        assert line.endswith(SHOWN)  # the reasons


def test_mark_failed_prints_the_reason_escaped(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _main(
        capsys, "mark-failed", "m", "1.1.0", "--reason", EVIL, "--registry", str(path)
    )
    assert code == 0
    lines = _printable_lines(out)
    assert lines == [
        f"marked m 1.1.0 failed: {SHOWN}",
        "  it is still deployed in production: roll back to replace it",
    ]
    assert ModelRegistry(path).get("m", "1.1.0").failure_reason == EVIL  # stored as given


def test_error_quoting_a_stored_reason_is_one_escaped_line(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _main(capsys, "deploy", "m", "1.0.0", "--registry", str(path))
    assert (code, out) == (cli.EXIT_USAGE, "")
    lines = _printable_lines(err)
    assert len(lines) == 1
    assert f"it is failed ({SHOWN})" in lines[0]


def test_verify_problem_naming_a_planted_file_stays_one_line(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (path / "models" / "m" / "@artifacts" / ("zz" + EVIL)).write_bytes(b"planted")
    code, out, err = _main(capsys, "verify", "--registry", str(path))
    report = ModelRegistry(path).verify()
    assert any(EVIL in p.detail for p in report.problems)  # the library quotes the key
    lines = _printable_lines(out)
    assert len(lines) == 1 + len(report.problems)
    assert any(("zz" + SHOWN) in line for line in lines[1:])
    assert code == (cli.EXIT_OK if report.ok else cli.EXIT_INTEGRITY)  # an orphan is harmless
    assert err == ""


def test_json_keeps_the_exact_values(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, pick in [
        (["history", "m"], lambda data: {e["reason"] for e in data[2:]}),
        (["show", "m", "1.0.0"], lambda data: {data["description"], data["failure_reason"]}),
        (["list", "m"], lambda data: {next(iter(data[0]["tags"]))}),
    ]:
        code, out, _ = _main(capsys, *args, "--json", "--registry", str(path))
        assert code == 0
        _printable_lines(out)  # json.dumps escapes control characters
        assert pick(json.loads(out)) == {EVIL}


def test_subprocess_output_has_no_raw_escape(path: Path) -> None:
    """The real bytes a terminal would get."""
    proc = subprocess.run(
        [sys.executable, "-m", "modelversions", "history", "m", "--registry", str(path)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"\x1b" not in proc.stdout and b"\r" not in proc.stdout
    assert "\u202e".encode() not in proc.stdout
    assert proc.stdout.count(b"\n") == 6


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colors_still_work_and_only_ours_reach_a_terminal(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    tty = _Tty()
    out = _Out(tty, as_json=False)
    out.table(("V", "STATUS", "NOTE"), [["1.0.0", "failed", EVIL]])
    with ModelRegistry(path) as reg:
        cmd_show(reg, cli.build_parser().parse_args(["show", "m", "1.0.0"]), out)
    text = tty.getvalue()
    assert text.count("\x1b[") == 4  # the two colored status words, opened and reset
    assert text.count("\x1b[31mfailed\x1b[0m") == 2
    assert "status:       \x1b[31mfailed\x1b[0m\n" in text
    assert all(
        line.replace("\x1b[31m", "").replace("\x1b[0m", "").isprintable()
        for line in text[:-1].split("\n")
    )


@pytest.mark.parametrize(
    "text, shown",
    [
        ("\n", r"\n"),
        ("\r", r"\r"),
        ("\t", r"\t"),
        ("\x00", r"\x00"),
        ("\x1b", r"\x1b"),
        ("\x7f", r"\x7f"),
        ("\x9b", r"\x9b"),  # C1 CSI
        ("\u2028", r"\u2028"),
        ("\u2029", r"\u2029"),
        ("\u202e", r"\u202e"),
        ("\u2066", r"\u2066"),
        ("\ufeff", r"\ufeff"),
        ("\U000e0001", r"\U000e0001"),  # a tag character (format)
        ("\ud800", r"\ud800"),  # a lone surrogate cannot even be encoded
        ("plain café 模型 ✓", "plain café 模型 ✓"),
        ("back\\slash", "back\\slash"),
    ],
)
def test_safe_escapes_controls_and_keeps_text(text: str, shown: str) -> None:
    assert _safe(text) == shown


# ---------------------------------------------------------------------- numeric options
@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--min-age", "nan"],
        ["verify", "--min-age", "NaN"],
        ["verify", "--min-age", "inf"],
        ["verify", "--min-age", "Infinity"],
        ["verify", "--min-age=-inf"],
        ["verify", "--min-age", "1e400"],  # overflows to inf
        ["verify", "--min-age=-1"],
        ["verify", "--min-age=-0.001"],
        ["prune", "m", "--keep", "nan"],
        ["prune", "m", "--keep", "inf"],
        ["prune", "m", "--keep=-1"],
        ["prune", "m", "--keep", "1.5"],
        ["history", "m", "--limit", "nan"],
        ["history", "m", "--limit", "inf"],
        ["history", "m", "--limit=-1"],
        ["history", "m", "--since", "nan"],
        ["history", "m", "--since", "inf"],
        ["history", "m", "--since", "0"],
        ["history", "m", "--since=-2"],
    ],
)
def test_numeric_options_refuse_nan_infinity_and_negatives(
    args: list[str], path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = ModelRegistry(path).history("m")
    with pytest.raises(SystemExit) as info:
        cli.main([*args, "--registry", str(path)])
    assert info.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    option = next(a for a in args if a.startswith("--")).split("=")[0]
    assert f"argument {option}: " in err
    assert ModelRegistry(path).history("m") == before  # nothing ran


def test_numeric_options_accept_zero_and_finite_values(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["verify", "--min-age", "0", "--registry", str(path)]) == 0
    assert cli.main(["verify", "--min-age", "1e9", "--registry", str(path)]) == 0
    assert cli.main(["history", "m", "--limit", "0", "--registry", str(path)]) == 0
    assert cli.main(["prune", "m", "--keep", "0", "--dry-run", "--registry", str(path)]) == 0


# ---------------------------------------------------------------------- a failing check
def _two(reg: ModelRegistry) -> None:
    reg.save("m", {"w": 0})
    reg.save("m", {"w": 1})


def test_redeploying_the_deployed_version_with_a_failing_check_says_it_stays() -> None:
    reg = ModelRegistry("memory://")
    _two(reg)
    reg.deploy("m", "1.0.0")
    reg.deploy("m", "1.1.0")
    with pytest.raises(DeployCheckFailedError) as info:
        reg.deploy("m", "1.1.0", check=lambda model: False)
    err = info.value
    # the truth: 1.1.0 is failed and still deployed; nothing was put back
    assert reg.get("m", "1.1.0").status is Status.FAILED
    assert str(reg.current("m").version) == "1.1.0"
    assert (err.version, err.restored, err.deployed) == ("1.1.0", None, "1.1.0")
    message = str(err)
    assert "1.1.0 is marked failed" in message
    assert "nothing to restore" in message
    assert "still deployed in 'production'" in message
    assert "deployed again" not in message
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.restored, copy.deployed, str(copy)) == (None, "1.1.0", message)


def test_first_deploy_failing_its_check_says_nothing_is_deployed() -> None:
    reg = ModelRegistry("memory://")
    _two(reg)
    reg.deploy("m", "1.0.0", env="staging")
    with pytest.raises(DeployCheckFailedError) as info:
        reg.deploy("m", "1.1.0", check=lambda model: False)
    err = info.value
    assert reg.current("m") is None
    assert "production" not in reg.envs("m")
    assert reg.get("m", "1.1.0").status is Status.FAILED
    assert (err.version, err.restored, err.deployed) == ("1.1.0", None, None)
    assert "1.1.0 is marked failed" in str(err)
    assert "nothing was deployed there before" in str(err)
    assert "nothing is deployed now in 'production'" in str(err)


def test_replacing_deploy_failing_its_check_says_what_is_back() -> None:
    reg = ModelRegistry("memory://")
    _two(reg)
    reg.deploy("m", "1.0.0")
    with pytest.raises(DeployCheckFailedError) as info:
        reg.deploy("m", "1.1.0", check=lambda model: False)
    err = info.value
    assert str(reg.current("m").version) == "1.0.0"
    assert (err.restored, err.deployed) == ("1.0.0", "1.0.0")
    assert str(err).endswith("1.1.0 is marked failed and 1.0.0 is deployed again")


def test_the_cli_prints_a_check_failure_as_one_escaped_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line has no check option; a default check set on the class reaches it."""
    folder = tmp_path / "registry"
    with ModelRegistry(folder) as reg:
        _two(reg)
        reg.deploy("m", "1.1.0")

    def check(model: Any) -> bool:
        raise ValueError("bad\n\x1b[2Jrow")

    original = ModelRegistry.__init__

    def init(self: ModelRegistry, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.set_check("m", check)

    monkeypatch.setattr(ModelRegistry, "__init__", init)
    code, out, err = _main(capsys, "deploy", "m", "1.1.0", "--registry", str(folder))
    assert (code, out) == (cli.EXIT_ERROR, "")
    [line] = _printable_lines(err)
    assert r"the check raised ValueError: bad\n\x1b[2Jrow" in line
    assert line.endswith(
        "1.1.0 is marked failed and, as it was already deployed there and there is nothing "
        "to restore, it is still deployed in 'production': roll back or deploy another "
        "version to replace it"
    )
