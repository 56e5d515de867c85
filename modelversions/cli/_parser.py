"""The argument parser: the subcommands, their options, and the numeric-option checks.

Global options (``--registry``, ``--json``) are accepted before or after the command.
Numbers are refused here, before any registry is opened, when they are not finite or
are out of range (``nan``, ``inf``, negatives): argparse reports them as usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Sequence
from typing import NoReturn, cast

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


def _non_negative(text: str) -> int:
    """An integer, 0 or more (``nan``, ``inf``, fractions and negatives are refused)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _port(text: str) -> int:
    value = _non_negative(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be 65535 or less, not {value}")
    return value


def _seconds(text: str) -> float:
    """A finite number of seconds, 0 or more (``nan``, ``inf`` and negatives are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text!r}")
    return value


#: The subcommands (a test checks this against the full parser).
_COMMANDS = frozenset(
    {"models", "list", "show", "current", "envs", "deploy", "promote", "rollback"}
    | {"mark-failed", "mark-stable", "history", "attest", "verify", "prune", "delete", "ui"}
)


class _Unused:
    """Stands in for a subcommand's parser that a lean parse leaves out."""

    def add_argument(self, *args: object, **kwargs: object) -> None:
        return None


class _LeanMiss(Exception):
    """The lean parser could not parse the arguments: the full one decides."""


class _LeanParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _LeanMiss(message)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """``build_parser().parse_args(argv)``, cheaper for a command line without help.

    Building every subcommand's parser costs a fresh process ~3 ms. A parser
    with only the subcommand that ``argv`` names parses any valid command line exactly
    as the full one does (the same global options, the same subcommand parser), so it
    is tried first; help, ``--version`` and every error go to the full parser, which
    prints the usual messages.
    """
    argv = list(argv)
    named = [arg for arg in argv if arg in _COMMANDS]
    asks = any(arg.startswith(("-h", "--h", "--vers")) for arg in argv)
    if named and not asks:
        with contextlib.suppress(_LeanMiss):
            return build_parser(only=named[0], parser_class=_LeanParser).parse_args(argv)
    return build_parser().parse_args(argv)


def build_parser(
    *,
    only: str | None = None,
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The argument parser (global options are accepted before or after the command).

    ``only``: build just this subcommand's parser (see :func:`parse_args`).
    """
    # SUPPRESS defaults: an option given before the command is not overwritten by the
    # subcommand's parser when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("global options")
    group.add_argument(
        "--registry",
        metavar="URI",
        default=argparse.SUPPRESS,
        help=f"the registry: a folder or a URI (default: ${ENV_VAR})",
    )
    group.add_argument(
        "--signing-key-file",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"sign what is written and refuse what no key signed (default: ${ENV_KEY})",
    )
    group.add_argument(
        "--verify-key-file",
        metavar="PATH",
        action="append",
        default=argparse.SUPPRESS,
        help="another key accepted when reading (key rotation); may be repeated",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON (stable keys) instead of tables",
    )
    parser = parser_class(
        prog=PROG,
        description="Versions, deploys and rollbacks of the models in a modelversions registry.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Command, text: str) -> argparse.ArgumentParser:
        if only is not None and name != only:
            return cast(argparse.ArgumentParser, _Unused())
        p = sub.add_parser(
            name,
            help=text,
            description=text,
            parents=[common],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    def env_option(p: argparse.ArgumentParser, text: str = "the environment") -> None:
        p.add_argument("--env", default="production", help=f"{text} (default: production)")

    def reason_option(p: argparse.ArgumentParser, required: bool = False) -> None:
        p.add_argument("--reason", required=required, help="why; recorded in the history")

    add("models", cmd_models, "list the models, their version count and deployments")

    p = add("list", cmd_list, "list a model's versions (* marks a deployed one)")
    p.add_argument("name", metavar="NAME")

    p = add("show", cmd_show, "show one version's record")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")

    p = add("current", cmd_current, "show the version deployed in an env")
    p.add_argument("name", metavar="NAME")
    env_option(p)

    p = add("envs", cmd_envs, "show every env's deployed version and rollback target")
    p.add_argument("name", metavar="NAME")

    p = add("deploy", cmd_deploy, "deploy a version to an env")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    env_option(p)
    reason_option(p)
    p.add_argument("--force", action="store_true", help="allow deploying a failed version")
    p.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")

    p = add("promote", cmd_promote, "deploy to one env the version another env runs")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--from", dest="from_env", default="staging", help="default: staging")
    p.add_argument("--to", dest="to_env", default="production", help="default: production")
    reason_option(p)
    p.add_argument("--force", action="store_true", help="allow promoting a failed version")

    p = add(
        "rollback",
        cmd_rollback,
        "deploy the latest stable version below the deployed one; mark that one failed",
    )
    p.add_argument("name", metavar="NAME")
    env_option(p)
    reason_option(p)
    p.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")

    p = add("mark-failed", cmd_mark_failed, "mark a version failed (no deploy changes)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    reason_option(p, required=True)
    p.add_argument("--env", default=None, help="the env where it failed, if env-specific")

    p = add("mark-stable", cmd_mark_stable, "mark a version stable (a rollback target)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    reason_option(p)

    p = add("history", cmd_history, "show a model's history, oldest first")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--env", default=None, help="only this env's events")
    p.add_argument("--since", type=_positive, default=1, metavar="SEQ", help="from this seq on")
    p.add_argument("--limit", type=_non_negative, metavar="N", help="only the last N events")

    p = add(
        "attest",
        cmd_attest,
        "sign, with the signing key, the whole history of a model as it is now",
    )
    p.add_argument("name", metavar="NAME")

    p = add("verify", cmd_verify, "check every model's history and artifacts")
    p.add_argument(
        "--repair",
        action="store_true",
        help="remove provable garbage (dead writers' temporaries, old unreferenced artifacts)",
    )
    p.add_argument(
        "--min-age",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="with --repair: only remove leftovers older than this (default: 3600)",
    )

    p = add("prune", cmd_prune, "delete the artifacts of old versions (records stay)")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--keep", type=_non_negative, required=True, metavar="N", help="keep the newest N"
    )
    reason_option(p)
    p.add_argument("--dry-run", action="store_true", help="print what would be pruned")

    p = add("delete", cmd_delete, "delete a version that is not deployed (history stays)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    reason_option(p)

    p = add("ui", cmd_ui, "serve a read-only web view of the registry (see docs/ui.md)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="port (default: 0, a free one; printed)")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    return parser
