"""What the command line promises the shell: its name, the environment variable it
reads, its exit codes and which library error gives which.

The ``--help`` epilog that documents the exit codes sits next to them, so the two are
changed together; ``_Failure`` carries an exit code for an error the command line finds
itself (no registry given, no such folder). Nothing here prints or touches a registry.
"""

from __future__ import annotations

from modelversions import (
    ConcurrentUpdateError,
    IntegrityError,
    InvalidInputError,
    ModelVersionsError,
    NoRollbackTargetError,
    NotFoundError,
    StorageError,
)

PROG = "modelversions"
ENV_VAR = "MODELVERSIONS_REGISTRY"
ENV_KEY = "MODELVERSIONS_SIGNING_KEY"

EXIT_OK = 0
EXIT_ERROR = 1  # any other modelversions error (e.g. the version already exists)
EXIT_USAGE = 2  # bad input: usage errors, invalid names or versions, refused transitions
EXIT_NOT_FOUND = 3  # no such registry, model or version; a pruned artifact
EXIT_NO_ROLLBACK_TARGET = 4
EXIT_INTEGRITY = 5  # damaged data, including a verify that finds damage
EXIT_STORAGE = 6  # storage failure, or a change that kept losing races to other writers

# Most specific first: the first matching class decides the exit code.
_EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidInputError, EXIT_USAGE),
    (NotFoundError, EXIT_NOT_FOUND),
    (NoRollbackTargetError, EXIT_NO_ROLLBACK_TARGET),
    (IntegrityError, EXIT_INTEGRITY),
    (ConcurrentUpdateError, EXIT_STORAGE),
    (StorageError, EXIT_STORAGE),
    (ModelVersionsError, EXIT_ERROR),
)

EPILOG = f"""\
registry:
  --registry URI, or the {ENV_VAR} environment variable: a folder, file://PATH,
  memory:// (empty each run), or an fsspec URL such as s3://bucket/prefix.
  A folder must exist (registries are created by the library's ModelRegistry).

signing:
  --signing-key-file PATH, or the {ENV_KEY} environment variable: the key (at
  least 32 bytes; a trailing newline in the file is ignored). Everything written is
  signed; every history entry and snapshot read must be signed by it or by a
  --verify-key-file key, else exit code 5 names the file.

exit codes:
  0  success
  1  any other modelversions error (e.g. the version already exists)
  2  bad input: usage, invalid name or version, a refused change (failed version
     without --force, deleting a deployed version)
  3  not found: the registry folder, a model or version, nothing deployed to
     promote, a pruned artifact
  4  no rollback target
  5  integrity: damaged data, or verify found damage; a missing or wrong signature
  6  storage failure, or a change that kept conflicting with other writers

Add --json to any command for machine-readable output.
"""


class _Failure(Exception):
    """An error found by the command line itself (not by the library)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _exit_code(exc: BaseException) -> int:
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_ERROR
