"""Validation of model and environment names (checked before storage is touched)."""

from __future__ import annotations

import re

from modelversions.errors import InvalidNameError

MAX_NAME = 200
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def _segment_problem(segment: str) -> str | None:
    if not segment:
        return "it has an empty segment (no leading, trailing or doubled '/')"
    if segment in (".", ".."):
        return f"{segment!r} is not allowed as a segment"
    if segment.startswith("."):
        # Storage keys are built from name segments; backends keep temporaries under
        # segments starting with '.' and do not list them (see Backend).
        return f"segment {segment!r} starts with '.'"
    if not _SEGMENT.fullmatch(segment):
        bad = sorted({c for c in segment if not re.fullmatch(r"[A-Za-z0-9._-]", c)})
        return f"it contains {''.join(bad)!r}; use letters, digits, '.', '_', '-'"
    return None


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidNameError`.

    Letters, digits, ``.``, ``_``, ``-``, and ``/`` between segments; no segment starts
    with ``.``; at most 200 characters; nothing is normalized.

    >>> check_name("team/churn")
    'team/churn'
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"a model name is a str, not {type(name).__name__}: {name!r}")
    if not name:
        raise InvalidNameError("invalid model name '': it is empty")
    if len(name) > MAX_NAME:
        raise InvalidNameError(
            f"invalid model name {name[:40]!r}...: {len(name)} characters, at most {MAX_NAME}"
        )
    for segment in name.split("/"):
        problem = _segment_problem(segment)
        if problem:
            raise InvalidNameError(f"invalid model name {name!r}: {problem}")
    return name


def check_env(env: object) -> str:
    """Return ``env`` if it is a valid environment name (one name segment).

    >>> check_env("staging")
    'staging'
    """
    if not isinstance(env, str):
        raise InvalidNameError(f"an env name is a str, not {type(env).__name__}: {env!r}")
    if len(env) > MAX_NAME:
        raise InvalidNameError(f"invalid env name {env[:40]!r}...: more than {MAX_NAME} characters")
    problem = _segment_problem(env)
    if problem:
        raise InvalidNameError(f"invalid env name {env!r}: {problem}")
    return env
