"""The argument parser: the subcommands, their options, and the numeric-option checks.

Global options (``--registry``, ``--json``) are accepted before or after the command.
Numbers are refused here, before any registry is opened, when they are not finite or
are out of range (``nan``, ``inf``, negatives): argparse reports them as usage errors.

The options are one table (``_GLOBAL``, ``_COMMAND_TABLE``): ``build_parser`` gives it
to argparse; ``parse_args`` first reads a plain command line from it directly (see
``_plain``), without importing argparse (~4 ms of a fresh process with building the
parser), and leaves everything else to argparse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn, cast

from modelversions import __version__
from modelversions.cli._commands import (
    Command,
    cmd_attest,
    cmd_current,
    cmd_delete,
    cmd_deploy,
    cmd_envs,
    cmd_history,
    cmd_list,
    cmd_mark_failed,
    cmd_mark_stable,
    cmd_models,
    cmd_promote,
    cmd_prune,
    cmd_rollback,
    cmd_show,
    cmd_ui,
    cmd_verify,
)
from modelversions.cli._shell import ENV_KEY, ENV_VAR, EPILOG, PROG

if TYPE_CHECKING:
    import argparse


def _type_error(message: str) -> Exception:
    import argparse  # only for a bad number, which argparse then reports

    return argparse.ArgumentTypeError(message)


def _non_negative(text: str) -> int:
    """An integer, 0 or more (``nan``, ``inf``, fractions and negatives are refused)."""
    try:
        value = int(text)
    except ValueError:
        raise _type_error(f"not an integer: {text!r}") from None
    if value < 0:
        raise _type_error(f"must be 0 or more, not {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise _type_error(f"must be 1 or more, not {value}")
    return value


def _port(text: str) -> int:
    value = _non_negative(text)
    if value > 65535:
        raise _type_error(f"must be 65535 or less, not {value}")
    return value


def _seconds(text: str) -> float:
    """A finite number of seconds, 0 or more (``nan``, ``inf`` and negatives are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise _type_error(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value):
        raise _type_error(f"must be a finite number of seconds, not {text!r}")
    if value < 0:
        raise _type_error(f"must be 0 or more, not {text!r}")
    return value


#: One argument: ``add_argument``'s positional and keyword arguments.
Arg = tuple[tuple[str, ...], dict[str, Any]]


def _arg(*flags: str, **options: Any) -> Arg:
    return flags, options


#: The global options (each defaults to ``argparse.SUPPRESS``: see ``build_parser``).
_GLOBAL: tuple[Arg, ...] = (
    _arg(
        "--registry",
        metavar="URI",
        help=f"the registry: a folder or a URI (default: ${ENV_VAR})",
    ),
    _arg(
        "--signing-key-file",
        metavar="PATH",
        help=f"sign what is written and refuse what no key signed (default: ${ENV_KEY})",
    ),
    _arg(
        "--verify-key-file",
        metavar="PATH",
        action="append",
        help="another key accepted when reading (key rotation); may be repeated",
    ),
    _arg(
        "--json",
        action="store_true",
        help="print JSON (stable keys) instead of tables",
    ),
)

_NAME = _arg("name", metavar="NAME")
_VERSION = _arg("version", metavar="VERSION")
_ENV = _arg("--env", default="production", help="the environment (default: production)")
_REASON = _arg("--reason", required=False, help="why; recorded in the history")
_DRY_RUN = _arg("--dry-run", action="store_true", help="print what would change; change nothing")

#: Each subcommand: its function, its one-line help, its arguments.
_COMMAND_TABLE: dict[str, tuple[Command, str, tuple[Arg, ...]]] = {
    "models": (cmd_models, "list the models, their version count and deployments", ()),
    "list": (cmd_list, "list a model's versions (* marks a deployed one)", (_NAME,)),
    "show": (cmd_show, "show one version's record", (_NAME, _VERSION)),
    "current": (cmd_current, "show the version deployed in an env", (_NAME, _ENV)),
    "envs": (cmd_envs, "show every env's deployed version and rollback target", (_NAME,)),
    "deploy": (
        cmd_deploy,
        "deploy a version to an env",
        (
            _NAME,
            _VERSION,
            _ENV,
            _REASON,
            _arg("--force", action="store_true", help="allow deploying a failed version"),
            _DRY_RUN,
        ),
    ),
    "promote": (
        cmd_promote,
        "deploy to one env the version another env runs",
        (
            _NAME,
            _arg("--from", dest="from_env", default="staging", help="default: staging"),
            _arg("--to", dest="to_env", default="production", help="default: production"),
            _REASON,
            _arg("--force", action="store_true", help="allow promoting a failed version"),
        ),
    ),
    "rollback": (
        cmd_rollback,
        "deploy the latest stable version below the deployed one; mark that one failed",
        (_NAME, _ENV, _REASON, _DRY_RUN),
    ),
    "mark-failed": (
        cmd_mark_failed,
        "mark a version failed (no deploy changes)",
        (
            _NAME,
            _VERSION,
            _arg("--reason", required=True, help="why; recorded in the history"),
            _arg("--env", default=None, help="the env where it failed, if env-specific"),
        ),
    ),
    "mark-stable": (
        cmd_mark_stable,
        "mark a version stable (a rollback target)",
        (_NAME, _VERSION, _REASON),
    ),
    "history": (
        cmd_history,
        "show a model's history, oldest first",
        (
            _NAME,
            _arg("--env", default=None, help="only this env's events"),
            _arg("--since", type=_positive, default=1, metavar="SEQ", help="from this seq on"),
            _arg("--limit", type=_non_negative, metavar="N", help="only the last N events"),
        ),
    ),
    "attest": (
        cmd_attest,
        "sign, with the signing key, the whole history of a model as it is now",
        (_NAME,),
    ),
    "verify": (
        cmd_verify,
        "check every model's history and artifacts",
        (
            _arg(
                "--repair",
                action="store_true",
                help="remove provable garbage (dead writers' temporaries, old unreferenced "
                "artifacts)",
            ),
            _arg(
                "--min-age",
                type=_seconds,
                default=3600.0,
                metavar="SECONDS",
                help="with --repair: only remove leftovers older than this (default: 3600)",
            ),
        ),
    ),
    "prune": (
        cmd_prune,
        "delete the artifacts of old versions (records stay)",
        (
            _NAME,
            _arg(
                "--keep", type=_non_negative, required=True, metavar="N", help="keep the newest N"
            ),
            _REASON,
            _arg("--dry-run", action="store_true", help="print what would be pruned"),
        ),
    ),
    "delete": (
        cmd_delete,
        "delete a version that is not deployed (history stays)",
        (_NAME, _VERSION, _REASON),
    ),
    "ui": (
        cmd_ui,
        "serve a read-only web view of the registry (see docs/ui.md)",
        (
            _arg("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)"),
            _arg("--port", type=_port, default=0, help="port (default: 0, a free one; printed)"),
            _arg("--open", action="store_true", help="open the page in a web browser"),
        ),
    ),
}

#: The subcommands (a test checks this against the full parser).
_COMMANDS = frozenset(_COMMAND_TABLE)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """``build_parser().parse_args(argv)``, cheaper for a plain command line.

    A command line of exact option names, each value a separate argument that does not
    start with ``-``, the subcommand's positionals and its required options all given
    (``--registry r current m --json``), is read from the table by :func:`_plain`, with
    the values argparse gives: the same attributes, defaults and types. Anything else
    (help, ``--version``, an abbreviation, ``--opt=value``, an error) goes to
    argparse: first a parser with only the named subcommand (building every one costs
    ~3 ms), whose errors go to the full parser, which prints the usual messages.
    """
    argv = list(argv)
    plain = _plain(argv)
    if plain is not None:
        # The attributes an argparse.Namespace would have (commands only read them).
        return cast("argparse.Namespace", plain)
    named = [arg for arg in argv if arg in _COMMANDS]
    asks = any(arg.startswith(("-h", "--h", "--vers")) for arg in argv)
    if named and not asks:
        try:
            return build_parser(only=named[0], parser_class=_lean_parser()).parse_args(argv)
        except _LeanMiss:
            pass
    return build_parser().parse_args(argv)


def _options(args: Sequence[Arg]) -> dict[str, Arg]:
    return {flags[0]: (flags, options) for flags, options in args if flags[0].startswith("-")}


_GLOBAL_OPTIONS = _options(_GLOBAL)


def _dest(flags: tuple[str, ...], options: dict[str, Any]) -> str:
    return str(options.get("dest") or flags[0].lstrip("-").replace("-", "_"))


def _plain(argv: Sequence[str]) -> SimpleNamespace | None:
    """What argparse makes of ``argv``, for a plain command line; None for any other."""
    given: list[dict[str, Any]] = [{}, {}]  # before and after the command
    command: str | None = None
    positionals: list[str] = []
    known = _GLOBAL_OPTIONS
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-"):
            if command is None:
                if token not in _COMMAND_TABLE:
                    return None
                command = token
                known = {**_GLOBAL_OPTIONS, **_options(_COMMAND_TABLE[token][2])}
            else:
                positionals.append(token)
            continue
        if token not in known:
            return None
        flags, options = known[token]
        side = given[command is not None]
        action = options.get("action")
        if action == "store_true":
            side[_dest(flags, options)] = True
            continue
        if i == len(argv) or argv[i].startswith("-"):
            return None
        value: Any = argv[i]
        i += 1
        if "type" in options:
            try:
                value = options["type"](value)
            except Exception:  # argparse reports it
                return None
        if action == "append":
            side.setdefault(_dest(flags, options), []).append(value)
        else:
            side[_dest(flags, options)] = value
    if command is None:
        return None
    func, _, args = _COMMAND_TABLE[command]
    values: dict[str, Any] = {**given[0], "command": command}
    names = [flags[0] for flags, _ in args if not flags[0].startswith("-")]
    if len(positionals) != len(names):
        return None
    values.update(zip(names, positionals, strict=True))
    for flags, options in args:
        dest = _dest(flags, options)
        if not flags[0].startswith("-"):
            continue
        if options.get("required") and dest not in given[1]:
            return None
        default = options.get("default", False if options.get("action") else None)
        if isinstance(default, str) and "type" in options:
            default = options["type"](default)
        values[dest] = default
    values.update(given[1])
    values["func"] = func
    return SimpleNamespace(**values)


class _LeanMiss(Exception):
    """The lean parser could not parse the arguments: the full one decides."""


def _lean_parser() -> type[argparse.ArgumentParser]:
    """A parser class that raises ``_LeanMiss`` instead of reporting an error."""
    import argparse

    class _LeanParser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise _LeanMiss(message)

    return _LeanParser


def build_parser(
    *, only: str | None = None, parser_class: type[argparse.ArgumentParser] | None = None
) -> argparse.ArgumentParser:
    """The argument parser (global options are accepted before or after the command).

    ``only``: build just this subcommand's parser (see :func:`parse_args`).
    """
    import argparse

    # SUPPRESS defaults: an option given before the command is not overwritten by the
    # subcommand's parser when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("global options")
    for flags, options in _GLOBAL:
        group.add_argument(*flags, **{**options, "default": argparse.SUPPRESS})
    parser = (parser_class or argparse.ArgumentParser)(
        prog=PROG,
        description="Versions, deploys and rollbacks of the models in a modelversions registry.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (func, text, args) in _COMMAND_TABLE.items():
        if only is not None and name != only:
            continue
        p = sub.add_parser(
            name,
            help=text,
            description=text,
            parents=[common],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        for flags, options in args:
            p.add_argument(*flags, **options)
    return parser
