"""``main``: parse, open the registry, run the command, turn errors into exit codes.

The one place that catches: the command line's own failures and every
:class:`~modelversions.errors.ModelVersionsError` become one escaped line on stderr and
an exit code (see :mod:`modelversions.cli._shell`); a closed pipe ends quietly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelversions import ModelRegistry, ModelVersionsError
from modelversions.cli._commands import Command
from modelversions.cli._output import _error, _Out
from modelversions.cli._parser import parse_args
from modelversions.cli._shell import (
    ENV_VAR,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    _exit_code,
    _Failure,
)

if TYPE_CHECKING:
    import argparse


def _open(args: argparse.Namespace) -> ModelRegistry:
    location = getattr(args, "registry", None) or os.environ.get(ENV_VAR)
    if not location:
        raise _Failure(f"no registry given: pass --registry URI or set {ENV_VAR}", EXIT_USAGE)
    if "://" not in location or location.startswith("file://"):
        folder = location[len("file://") :] if location.startswith("file://") else location
        folder = os.path.expanduser(folder)
        # A missing folder is a typo, not a registry to create; anything else that is
        # not a folder (a file) gets the library's own StorageError message.
        if not os.path.lexists(folder):
            raise _Failure(f"no registry at {folder!r}: the folder does not exist", EXIT_NOT_FOUND)
    keys = [_read_key(path) for path in getattr(args, "verify_key_file", [])]
    key_file = getattr(args, "signing_key_file", None)
    signing_key = None if key_file is None else _read_key(key_file)
    return ModelRegistry(location, signing_key=signing_key, verify_keys=keys)


def _read_key(path: str) -> bytes:
    """The key in file ``path``, without one trailing newline."""
    try:
        with open(os.path.expanduser(path), "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise _Failure(f"cannot read the key file {path!r}: {exc.strerror}", EXIT_USAGE) from None
    return data[:-2] if data.endswith(b"\r\n") else data.removesuffix(b"\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see ``EPILOG``)."""
    # usage errors exit 2 here, as argparse does
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = _Out(sys.stdout, as_json=bool(getattr(args, "json", False)))
    func: Command = args.func
    try:
        with _open(args) as reg:
            code = func(reg, args, out)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except _Failure as exc:
        _error(str(exc))
        return exc.code
    except ModelVersionsError as exc:
        _error(str(exc))
        return _exit_code(exc)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
