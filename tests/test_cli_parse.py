"""The command line read without argparse (``_parser._plain``) gives what argparse gives.

Random command lines built from the option table's own words (and a few that are not
options, values that look like options, numbers out of range): whenever ``_plain``
reads one, argparse's full parser gives the same attributes; and ``parse_args`` always
does what the full parser does, the same namespace or the same usage error.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from modelversions.cli import _parser

_OPTIONS = sorted(
    {flags[0] for flags, _ in _parser._GLOBAL}
    | {
        flags[0]
        for _, _, args in _parser._COMMAND_TABLE.values()
        for flags, _ in args
        if flags[0].startswith("-")
    }
)
_WORDS = st.sampled_from(
    [*_OPTIONS, *sorted(_parser._COMMANDS), "-h", "--reg", "--env=staging", "--", "-"]
)
_VALUES = st.sampled_from(["m", "team/churn", "1.0.0", "0", "3", "-1", "nan", "", "a b", "list"])
_ARGV = st.lists(st.one_of(_WORDS, _VALUES), max_size=9)


def _full(argv: list[str]) -> tuple[str, Any]:
    """The full argparse parser's answer: ("ok", attributes) or ("exit", code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return "ok", vars(_parser.build_parser().parse_args(argv))
        except SystemExit as exc:
            return "exit", (exc.code, err.getvalue())


def _ours(argv: list[str]) -> tuple[str, Any]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return "ok", vars(_parser.parse_args(argv))
        except SystemExit as exc:
            return "exit", (exc.code, err.getvalue())


@settings(max_examples=400, deadline=None)
@given(_ARGV)
@example(["--verify-key-file", "a", "current", "m", "--verify-key-file", "b"])
@example(["--registry", "r", "current", "m", "--registry", "s", "--json"])
@example(["--registry", "current", "deploy", "m", "1.0.0", "--force", "--dry-run"])
@example(["history", "m", "--since", "0"])
@example(["prune", "m", "--keep", "2"])
@example(["mark-failed", "m", "1.0.0"])
@example(["ui", "--port", "70000"])
def test_a_plain_command_line_reads_as_argparse_reads_it(argv: list[str]) -> None:
    full = _full(argv)
    plain = _parser._plain(argv)
    if plain is not None:
        assert full == ("ok", vars(plain))
    assert _ours(argv) == full


@pytest.mark.parametrize(
    "argv",
    [
        ["--registry", "r", "current", "m"],
        ["current", "m", "--json", "--env", "staging", "--registry", "r"],
        ["--json", "history", "m", "--since", "2", "--limit", "0"],
        ["verify", "--repair", "--min-age", "1.5"],
        ["promote", "m", "--from", "a", "--to", "b", "--reason", "x", "--force"],
    ],
)
def test_common_command_lines_are_read_without_argparse(argv: list[str]) -> None:
    plain = _parser._plain(argv)
    assert plain is not None and vars(plain) == _full(argv)[1]
