"""The exception tree: every error is public, derives from ModelVersionsError and from
the builtin errors.py names for it, and the tree drawn in errors.py is the real one."""

from __future__ import annotations

import builtins
import copy
import inspect
import pickle
import re

import pytest

import modelversions
from modelversions import errors

#: Each error, its parent in the tree, and the builtin it must also be.
TREE: dict[str, tuple[str, type[BaseException] | None]] = {
    "InvalidInputError": ("ModelVersionsError", ValueError),
    "InvalidNameError": ("InvalidInputError", ValueError),
    "InvalidVersionError": ("InvalidInputError", ValueError),
    "ForbiddenTransitionError": ("InvalidInputError", ValueError),
    "NotFoundError": ("ModelVersionsError", LookupError),
    "ModelNotFoundError": ("NotFoundError", LookupError),
    "VersionNotFoundError": ("NotFoundError", LookupError),
    "ArtifactPrunedError": ("NotFoundError", LookupError),
    "SerializerNotFoundError": ("NotFoundError", LookupError),
    "VersionExistsError": ("ModelVersionsError", FileExistsError),
    "NoRollbackTargetError": ("ModelVersionsError", LookupError),
    "IntegrityError": ("ModelVersionsError", None),
    "SignatureError": ("IntegrityError", None),
    "UnsafeFormatError": ("IntegrityError", None),
    "ConcurrentUpdateError": ("ModelVersionsError", None),
    "DeployCheckFailedError": ("ModelVersionsError", None),
    "ServingTimeoutError": ("ModelVersionsError", TimeoutError),
    "StorageError": ("ModelVersionsError", OSError),
}


def _error_classes() -> dict[str, type[BaseException]]:
    return {
        name: obj
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }


def test_the_table_covers_every_error_class() -> None:
    assert set(_error_classes()) == set(TREE) | {"ModelVersionsError"}
    assert set(errors.__all__) == set(_error_classes())


@pytest.mark.parametrize("name", sorted(TREE))
def test_error_is_public_and_in_the_tree(name: str) -> None:
    cls = getattr(modelversions, name)
    assert cls is getattr(errors, name)
    assert name in modelversions.__all__
    parent_name, builtin = TREE[name]
    assert issubclass(cls, errors.ModelVersionsError)
    assert cls.__bases__[0] is getattr(errors, parent_name)
    if builtin is not None:
        assert issubclass(cls, builtin)
        err = cls("boom") if name != "DeployCheckFailedError" else None
        if err is not None:
            with pytest.raises(builtin):
                raise err


def test_base_is_an_exception() -> None:
    assert modelversions.ModelVersionsError is errors.ModelVersionsError
    assert errors.ModelVersionsError.__bases__ == (Exception,)


@pytest.mark.parametrize(
    "name", ["IntegrityError", "ConcurrentUpdateError", "DeployCheckFailedError"]
)
def test_plain_errors_are_not_value_or_lookup_errors(name: str) -> None:
    cls = getattr(errors, name)
    for builtin in (ValueError, LookupError, OSError):
        assert not issubclass(cls, builtin)


def test_the_drawn_tree_matches_the_classes() -> None:
    """The tree in the errors.py docstring names each class's parent and builtin."""
    block = (errors.__doc__ or "").split("::", 1)[1]
    drawn: dict[str, tuple[str, str | None]] = {}
    stack: list[tuple[int, str]] = []  # (column, name) of the open branches
    for line in block.splitlines():
        m = re.match(r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w*Error)(?: \((?P<b>\w+)\))?", line)
        if m is None:
            continue
        column = len(m["lead"])
        while stack and stack[-1][0] >= column:
            stack.pop()
        if stack:
            drawn[m["name"]] = (stack[-1][1], m["b"])
        stack.append((column, m["name"]))
    assert set(drawn) == set(TREE)
    for name, (parent, builtin) in drawn.items():
        assert TREE[name][0] == parent, name
        if builtin is not None:
            assert TREE[name][1] is getattr(builtins, builtin), name


@pytest.mark.parametrize("restored", ["1.0.0", None])
def test_deploy_check_failed_error_pickles_with_its_fields(restored: str | None) -> None:
    err = errors.DeployCheckFailedError(
        "deploy of churn 2.0.0 failed its check", name="churn", version="2.0.0", restored=restored
    )
    for copied in (pickle.loads(pickle.dumps(err)), copy.copy(err), copy.deepcopy(err)):
        assert type(copied) is errors.DeployCheckFailedError
        assert str(copied) == "deploy of churn 2.0.0 failed its check"
        assert (copied.name, copied.version, copied.restored) == ("churn", "2.0.0", restored)


@pytest.mark.parametrize("name", sorted(n for n in TREE if n != "DeployCheckFailedError"))
def test_other_errors_pickle(name: str) -> None:
    cls = getattr(errors, name)
    back = pickle.loads(pickle.dumps(cls("message text")))
    assert type(back) is cls
    assert "message text" in str(back)


def test_storage_error_chains_the_cause() -> None:
    cause = PermissionError(13, "denied")
    try:
        try:
            raise cause
        except OSError as exc:
            raise errors.StorageError("storage failed") from exc
    except errors.StorageError as err:
        assert err.__cause__ is cause
        assert isinstance(err, OSError)
