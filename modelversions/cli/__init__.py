"""The ``modelversions`` command line: a thin layer over :class:`ModelRegistry`.

Every command is one or two registry calls; every rule (what a deploy promotes,
what a rollback targets, what prune keeps) is the library's. See ``docs/cli.md``.

Importing this package does not import joblib or numpy: only commands that load a
model would, and none does.

The rooms, each importing only the ones listed before it:

- ``_shell``: the program name, the environment variable, the exit codes and which
  library error gives which, the ``--help`` epilog that documents them.
- ``_output``: everything printed goes through ``_Out``; ``_safe`` escapes control and
  invisible formatting characters in stored text; colour only on a terminal.
- ``_render``: how versions and events read (table rows, JSON shapes, deploy and
  rollback reports).
- ``_commands``: one ``cmd_*`` function per subcommand.
- ``_parser``: the option table, ``build_parser`` (argparse, built from the table), the
  numeric-option checks, and ``parse_args``, which reads a plain command line from the
  table without importing argparse, else first tries a parser with only the named
  subcommand (cheaper to build).
- ``_main``: ``main``: open the registry, run the command, map errors to exit codes.
"""

from __future__ import annotations

from modelversions.cli._main import main
from modelversions.cli._parser import build_parser
from modelversions.cli._shell import (
    ENV_VAR,
    EXIT_ERROR,
    EXIT_INTEGRITY,
    EXIT_NO_ROLLBACK_TARGET,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_STORAGE,
    EXIT_USAGE,
)

__all__ = [
    "ENV_VAR",
    "EXIT_ERROR",
    "EXIT_INTEGRITY",
    "EXIT_NOT_FOUND",
    "EXIT_NO_ROLLBACK_TARGET",
    "EXIT_OK",
    "EXIT_STORAGE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]
