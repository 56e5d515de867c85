"""modelversions: semantic versions, durable storage and one-call rollback for models.

>>> from modelversions import ModelRegistry
>>> reg = ModelRegistry("memory://")
>>> _ = reg.save("churn", {"w": 1}, metrics={"auc": 0.81})
>>> _ = reg.save("churn", {"w": 2}, metrics={"auc": 0.62})
>>> _ = reg.deploy("churn", "1.0.0"); _ = reg.deploy("churn", "1.1.0")
>>> str(reg.rollback("churn", reason="auc dropped").version)
'1.0.0'
"""

from __future__ import annotations

# Importing the package imports none of its modules: each name below is imported on
# first use (PEP 562 ``__getattr__``), so ``import modelversions`` costs well under a
# millisecond and ``from modelversions import ModelRegistry`` only what opening a
# registry needs (docs/architecture.md, "Import budget"). Type checkers and the docs
# read the imports in this block; ``typing`` itself is not imported for it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from modelversions.backends import Backend, BlobWriter, open_backend, register_backend
    from modelversions.errors import (
        ArtifactPrunedError,
        ConcurrentUpdateError,
        DeployCheckFailedError,
        ForbiddenTransitionError,
        IntegrityError,
        InvalidInputError,
        InvalidNameError,
        InvalidVersionError,
        ModelNotFoundError,
        ModelVersionsError,
        NoRollbackTargetError,
        NotFoundError,
        SerializerNotFoundError,
        ServingTimeoutError,
        SignatureError,
        StorageError,
        UnsafeFormatError,
        VersionExistsError,
        VersionNotFoundError,
    )
    from modelversions.fsck import VerifyProblem, VerifyReport
    from modelversions.records import Event, ModelVersion, Status, StatusChange
    from modelversions.registry import ModelRegistry
    from modelversions.serializers import Serializer, register_serializer
    from modelversions.serving import Served
    from modelversions.signing import EntrySignature, key_id
    from modelversions.version import Version

__version__ = "0.1.0"

__all__ = [
    "ArtifactPrunedError",
    "Backend",
    "BlobWriter",
    "ConcurrentUpdateError",
    "DeployCheckFailedError",
    "EntrySignature",
    "Event",
    "ForbiddenTransitionError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "InvalidVersionError",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelVersion",
    "ModelVersionsError",
    "NoRollbackTargetError",
    "NotFoundError",
    "Serializer",
    "SerializerNotFoundError",
    "Served",
    "ServingTimeoutError",
    "SignatureError",
    "Status",
    "StatusChange",
    "StorageError",
    "UnsafeFormatError",
    "VerifyProblem",
    "VerifyReport",
    "Version",
    "VersionExistsError",
    "VersionNotFoundError",
    "__version__",
    "key_id",
    "open_backend",
    "register_backend",
    "register_serializer",
]

# Where each public name lives; imported on first access, then cached in the package.
_HOME = {
    "Backend": "backends",
    "BlobWriter": "backends",
    "open_backend": "backends",
    "register_backend": "backends",
    "Event": "records",
    "ModelVersion": "records",
    "Status": "records",
    "StatusChange": "records",
    "ModelRegistry": "registry",
    "VerifyProblem": "fsck",
    "VerifyReport": "fsck",
    "Serializer": "serializers",
    "register_serializer": "serializers",
    "Served": "serving",
    "EntrySignature": "signing",
    "key_id": "signing",
    "Version": "version",
}
# The submodules ``import modelversions`` used to import eagerly stay reachable as
# attributes (``modelversions.errors.IntegrityError`` after a bare ``import modelversions``).
_SUBMODULES = frozenset(
    {"backends", "errors", "fsck", "records", "registry", "serializers", "serving", "signing"}
    | {"version", "retention", "serialization"}
)


def __getattr__(name: str) -> object:
    # __import__ rather than importlib.import_module: -X importtime then shows what it costs.
    if name in _SUBMODULES:
        value: object = __import__(f"modelversions.{name}", fromlist=["_"])
    elif name in __all__:
        home = __import__(f"modelversions.{_HOME.get(name, 'errors')}", fromlist=["_"])
        value = getattr(home, name)
    else:
        raise AttributeError(f"module 'modelversions' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
