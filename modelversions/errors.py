"""The exception tree of modelversions.

Every error the library raises on purpose derives from :class:`ModelVersionsError`,
and each also derives from the builtin that fits, so ``except ValueError`` or
``except LookupError`` keep working::

    ModelVersionsError
    ├── InvalidInputError (ValueError)          bad input, nothing was touched
    │   ├── InvalidNameError                    a model or env name breaks the naming rules
    │   ├── InvalidVersionError                 text that is not a version
    │   └── ForbiddenTransitionError            e.g. deploying a failed version without force
    ├── NotFoundError (LookupError)
    │   ├── ModelNotFoundError                  no model of that name
    │   ├── VersionNotFoundError                the model exists, the version does not
    │   ├── ArtifactPrunedError                 the version exists but its artifact was pruned
    │   └── SerializerNotFoundError             no serializer of that name is installed
    ├── VersionExistsError (FileExistsError)    save of a version that is already stored
    ├── NoRollbackTargetError (LookupError)     rollback with nothing to roll back to
    ├── IntegrityError                          stored bytes do not match their checksum
    │   ├── SignatureError                      an entry or snapshot no configured key signed
    │   └── UnsafeFormatError                   loading would unpickle, and allow_pickle=False
    ├── ConcurrentUpdateError                   a commit kept losing races; nothing changed
    ├── DeployCheckFailedError                  a guarded deploy's check failed; rolled back
    ├── ServingTimeoutError (TimeoutError)      a served handle did not reach a version in time
    └── StorageError (OSError)                  the backend failed; lower-level error chained

Lower-level exceptions (``OSError`` from a disk, ``botocore`` errors from S3) are
translated into :class:`StorageError` at the backend boundary and chained with
``raise ... from``, so callers only need to catch this library's errors.
"""

from __future__ import annotations

__all__ = [
    "ArtifactPrunedError",
    "ConcurrentUpdateError",
    "DeployCheckFailedError",
    "ForbiddenTransitionError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "InvalidVersionError",
    "ModelNotFoundError",
    "ModelVersionsError",
    "NoRollbackTargetError",
    "NotFoundError",
    "SerializerNotFoundError",
    "ServingTimeoutError",
    "SignatureError",
    "StorageError",
    "UnsafeFormatError",
    "VersionExistsError",
    "VersionNotFoundError",
]


class ModelVersionsError(Exception):
    """Base class of every error raised by modelversions."""


class InvalidInputError(ModelVersionsError, ValueError):
    """An argument is not acceptable; nothing was read or written."""


class InvalidNameError(InvalidInputError):
    """A model or environment name breaks the naming rules."""


class InvalidVersionError(InvalidInputError):
    """Text that cannot be parsed as a version."""


class ForbiddenTransitionError(InvalidInputError):
    """A lifecycle change the rules refuse (for example deploying a failed version)."""


class NotFoundError(ModelVersionsError, LookupError):
    """Something that was asked for does not exist."""


class ModelNotFoundError(NotFoundError):
    """No model of that name exists in the registry."""


class VersionNotFoundError(NotFoundError):
    """The model exists but has no such version."""


class ArtifactPrunedError(NotFoundError):
    """The version exists but its artifact was removed by ``prune``."""


class SerializerNotFoundError(NotFoundError):
    """No serializer of that name is installed; the message says what to ``pip install``."""


class VersionExistsError(ModelVersionsError, FileExistsError):
    """A version equal to the one being saved already exists."""


class NoRollbackTargetError(ModelVersionsError, LookupError):
    """``rollback`` found nothing deployed or no stable version below it."""


class IntegrityError(ModelVersionsError):
    """Stored bytes or records are damaged: a checksum or a parse failed."""


class SignatureError(IntegrityError):
    """A history entry or snapshot lacks a valid signature by one of the registry's keys.

    Raised before any artifact is opened; the message names the file.
    """


class UnsafeFormatError(IntegrityError):
    """Loading would unpickle (run code), and the registry has ``allow_pickle=False``."""


class ConcurrentUpdateError(ModelVersionsError):
    """A change kept conflicting with other writers and was given up; nothing changed."""


class DeployCheckFailedError(ModelVersionsError):
    """A guarded deploy's check failed; the version is marked failed, the previous one put back.

    Attributes:
        name: the model.
        version: the version whose check failed (now marked failed).
        restored: the version deployed again; ``None`` if nothing was put back: nothing
            was deployed before, ``version`` itself was already deployed (it stays
            deployed, failed), or another writer moved the env while the check ran (the
            env is then left as is).
        deployed: the version the env runs after the failure (``None``: nothing).
    """

    def __init__(
        self,
        message: str,
        *,
        name: str,
        version: str,
        restored: str | None,
        deployed: str | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.version = version
        self.restored = restored
        self.deployed = deployed

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (
            _rebuild_check_failed,
            (self.args[0], self.name, self.version, self.restored, self.deployed),
        )


def _rebuild_check_failed(
    message: str, name: str, version: str, restored: str | None, deployed: str | None = None
) -> DeployCheckFailedError:
    return DeployCheckFailedError(
        message, name=name, version=version, restored=restored, deployed=deployed
    )


class ServingTimeoutError(ModelVersionsError, TimeoutError):
    """``Served.wait_for`` timed out: the version asked for is not served (yet)."""


class StorageError(ModelVersionsError, OSError):
    """The storage backend failed; the original error is chained as ``__cause__``."""
