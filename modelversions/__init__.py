"""modelversions: semantic versions, durable storage and one-call rollback for models.

>>> from modelversions import ModelRegistry
>>> reg = ModelRegistry("memory://")
>>> _ = reg.save("churn", {"w": 1}, metrics={"auc": 0.81})
>>> _ = reg.save("churn", {"w": 2}, metrics={"auc": 0.62})
>>> _ = reg.deploy("churn", "1.0.0"); _ = reg.deploy("churn", "1.1.0")
>>> str(reg.rollback("churn", reason="auc dropped").version)
'1.0.0'
"""

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
from modelversions.records import Event, ModelVersion, Status, StatusChange
from modelversions.registry import ModelRegistry, VerifyProblem, VerifyReport
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
