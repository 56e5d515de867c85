"""Naming rules for models and environments (checked before storage is touched)."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelversions import InvalidInputError, InvalidNameError, ModelRegistry, ModelVersionsError
from modelversions._names import MAX_NAME, check_env, check_name

ALLOWED = set(string.ascii_letters + string.digits + "._-")

VALID = ["churn", "team/churn", "a.b-c_d", "A", "0", "-", "_x", "v1.2", "a/b/c/d/e", "x" * 200]
INVALID = {
    "": "empty",
    "a//b": "empty segment",
    "/a": "empty segment",
    "a/": "empty segment",
    "/": "empty segment",
    ".": "'.'",
    "..": "'..'",
    "a/../b": "'..'",
    "a/./b": "'.'",
    "../a": "'..'",
    ".hidden": "'.'",
    "team/.x": "'.'",
    "a b": "' '",
    "a\tb": "'\\t'",
    "a\nb": "'\\n'",
    "modèle": "'è'",
    "名前": "名",
    "a\\b": "'\\\\'",
    "a:b": "':'",
    "a*": "'*'",
    "a@b": "'@'",
    "a\x00b": "\\x00",
    "x" * 201: "201 characters",
}


@pytest.mark.parametrize("name", VALID)
def test_valid_model_names_are_returned_unchanged(name: str) -> None:
    assert check_name(name) == name


def test_names_are_not_normalized() -> None:
    assert check_name("Churn") == "Churn"
    reg = ModelRegistry("memory://")
    reg.save("Churn", 1)
    reg.save("churn", 2)
    assert reg.models() == ["Churn", "churn"]


@pytest.mark.parametrize(("name", "hint"), sorted(INVALID.items()))
def test_invalid_model_names(name: str, hint: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_name(name)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, InvalidInputError)
    assert isinstance(info.value, ModelVersionsError)
    message = str(info.value)
    assert hint in message
    assert repr(name[:40]) in message  # the message quotes the name


def test_length_limit_is_200() -> None:
    assert MAX_NAME == 200
    assert check_name("a/" * 99 + "bb") == "a/" * 99 + "bb"  # 200 characters
    with pytest.raises(InvalidNameError):
        check_name("a/" * 100 + "b")  # 201


@pytest.mark.parametrize("bad", [None, 3, b"churn", ["churn"]])
def test_non_str_names(bad: Any) -> None:
    with pytest.raises(InvalidNameError, match="str"):
        check_name(bad)
    with pytest.raises(InvalidNameError, match="str"):
        check_env(bad)


@pytest.mark.parametrize("env", ["production", "staging", "eu-west.1", "canary_2", "x" * 200])
def test_valid_env_names(env: str) -> None:
    assert check_env(env) == env


@pytest.mark.parametrize(
    "env", ["", "a/b", "/", ".", "..", ".env", "prod uction", "é", "x" * 201, "a\nb"]
)
def test_invalid_env_names(env: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_env(env)
    assert isinstance(info.value, ValueError)


_segment = st.text(alphabet=sorted(ALLOWED), min_size=1, max_size=12).filter(
    lambda s: not s.startswith(".")
)


@given(st.lists(_segment, min_size=1, max_size=6))
def test_generated_valid_names(segments: list[str]) -> None:
    name = "/".join(segments)
    if len(name) <= MAX_NAME:
        assert check_name(name) == name
        if len(segments) == 1:
            assert check_env(name) == name
    else:
        with pytest.raises(InvalidNameError):
            check_name(name)


@given(st.text(min_size=1, max_size=30), st.characters())
def test_any_other_character_is_invalid(text: str, bad: str) -> None:
    if bad in ALLOWED or bad == "/":
        return
    name = "ok" + text[: len(text) // 2] + bad + text[len(text) // 2 :]
    with pytest.raises(InvalidNameError):
        check_name(name)
    with pytest.raises(InvalidNameError):
        check_env(name)
