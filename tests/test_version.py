"""Tests for modelversions.version: parsing, SemVer precedence, bumps, value semantics."""

from __future__ import annotations

import copy
import functools
import itertools
import operator
import pathlib
import pickle
import re
import string
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelversions.errors import InvalidInputError, InvalidVersionError, ModelVersionsError
from modelversions.version import Version

# --------------------------------------------------------------------------------------
# Reference comparator, written directly from SemVer 2.0.0 section 11 with plain string
# splitting (deliberately independent of Version's internal key).
# --------------------------------------------------------------------------------------


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def ref_cmp(a: str, b: str) -> int:
    """Compare two canonical SemVer strings; -1, 0 or 1."""

    def split(text: str) -> tuple[list[int], list[str] | None]:
        text = text.split("+", 1)[0]  # build metadata does not figure in precedence
        core, dash, pre = text.partition("-")  # the core never contains "-"
        return [int(n) for n in core.split(".")], (pre.split(".") if dash else None)

    core_a, pre_a = split(a)
    core_b, pre_b = split(b)
    for x, y in zip(core_a, core_b, strict=True):  # 11.2: major, minor, patch numerically
        if x != y:
            return _sign(x - y)
    if pre_a is None or pre_b is None:  # 11.3: a pre-release has lower precedence
        return (pre_a is None) - (pre_b is None)
    for p, q in zip(pre_a, pre_b, strict=False):  # 11.4: identifier by identifier
        p_num, q_num = p.isdigit(), q.isdigit()
        if p_num and q_num:
            if int(p) != int(q):
                return _sign(int(p) - int(q))
        elif p_num != q_num:
            return -1 if p_num else 1  # numeric < alphanumeric
        elif p != q:
            return -1 if p < q else 1  # ASCII order
    return _sign(len(pre_a) - len(pre_b))  # a larger set of fields wins


def test_reference_comparator_sanity() -> None:
    assert ref_cmp("1.0.0-alpha", "1.0.0-alpha.1") == -1
    assert ref_cmp("1.0.0", "1.0.0-rc.1") == 1
    assert ref_cmp("1.0.0+a", "1.0.0+b") == 0
    assert ref_cmp("1.10.0", "1.9.0") == 1


# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits + "-"

numbers = st.one_of(st.integers(0, 3), st.integers(0, 10**12))
numeric_ids = numbers.map(str)
alnum_ids = st.one_of(
    st.sampled_from(["alpha", "beta", "rc", "a", "b", "B", "x-y", "-", "--", "0a", "a0", "1-"]),
    st.text(ALNUM, min_size=1, max_size=6).filter(lambda s: not s.isdigit()),
)
prereleases = st.lists(st.one_of(numeric_ids, alnum_ids), min_size=1, max_size=4).map(".".join)
# Build identifiers may have leading zeros ("001").
builds = st.lists(st.text(ALNUM, min_size=1, max_size=6), min_size=1, max_size=3).map(".".join)


@st.composite
def semver_parts(draw: st.DrawFn) -> tuple[int, int, int, str | None, str | None]:
    return (
        draw(numbers),
        draw(numbers),
        draw(numbers),
        draw(st.none() | prereleases),
        draw(st.none() | builds),
    )


def canonical(parts: tuple[int, int, int, str | None, str | None]) -> str:
    major, minor, patch, pre, build = parts
    text = f"{major}.{minor}.{patch}"
    if pre is not None:
        text += f"-{pre}"
    if build is not None:
        text += f"+{build}"
    return text


semver_strings = semver_parts().map(canonical)

# Small values so that pairs and triples are often equal or differ only late in the key.
small_semver_strings = st.builds(
    lambda core, pre, build: canonical((*core, pre, build)),
    st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
    st.none()
    | st.lists(
        st.sampled_from(["0", "1", "2", "10", "a", "b", "rc", "-"]), min_size=1, max_size=3
    ).map(".".join),
    st.none() | st.sampled_from(["a", "b", "001"]),
)
any_semver = st.one_of(small_semver_strings, semver_strings)
versions = any_semver.map(Version)

# --------------------------------------------------------------------------------------
# Parsing: valid input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain SemVer, including the spec's own examples
        ("1.2.3", "1.2.3"),
        ("0.0.0", "0.0.0"),
        ("10.20.30", "10.20.30"),
        ("1.0.0-alpha", "1.0.0-alpha"),
        ("1.0.0-alpha.1", "1.0.0-alpha.1"),
        ("1.0.0-0.3.7", "1.0.0-0.3.7"),
        ("1.0.0-x.7.z.92", "1.0.0-x.7.z.92"),
        ("1.0.0-x-y-z.--", "1.0.0-x-y-z.--"),
        ("1.0.0-0a.00a", "1.0.0-0a.00a"),
        ("1.0.0-alpha+001", "1.0.0-alpha+001"),
        ("1.0.0+20130313144700", "1.0.0+20130313144700"),
        ("1.0.0-beta+exp.sha.5114f85", "1.0.0-beta+exp.sha.5114f85"),
        ("1.0.0+21AF26D3----117B344092BD", "1.0.0+21AF26D3----117B344092BD"),
        ("9223372036854775807.0.0", "9223372036854775807.0.0"),  # MAX_NUMBER
        # surrounding whitespace
        ("  1.2.3  ", "1.2.3"),
        ("\t1.2.3\n", "1.2.3"),
        # leading v / V
        ("v1.2.3", "1.2.3"),
        ("V1.2.3-rc.1+b", "1.2.3-rc.1+b"),
        # missing minor / patch
        ("v3", "3.0.0"),
        ("3", "3.0.0"),
        ("v1.0", "1.0.0"),
        ("1.2", "1.2.0"),
        ("1.2-rc.1", "1.2.0-rc.1"),
        ("2+build.7", "2.0.0+build.7"),
        # model-name prefixes
        ("model_v1.0", "1.0.0"),
        ("churn-v2", "2.0.0"),
        ("Churn-V2.1.3-rc.1+gpu", "2.1.3-rc.1+gpu"),
        ("my.model-2_v0.3", "0.3.0"),
        ("resnet_v2_v1.0", "1.0.0"),
        ("bert-v2-v1.0.0-rc.1", "1.0.0-rc.1"),
        (" churn-v2 ", "2.0.0"),
        # a pre-release that merely looks like a prefix stays a pre-release
        ("v1.0-v2", "1.0.0-v2"),
        ("1.0.0-rc-v2", "1.0.0-rc-v2"),
        # PEP 440 pre-release spellings
        ("1.0rc1", "1.0.0-rc.1"),
        ("2.1a3", "2.1.0-a.3"),
        ("1.0b2", "1.0.0-b.2"),
        ("1.2.3rc4", "1.2.3-rc.4"),
        ("v1.0rc1", "1.0.0-rc.1"),
        ("1.0RC1", "1.0.0-rc.1"),
        ("1.0alpha2", "1.0.0-a.2"),
        ("model_v1.0rc1", "1.0.0-rc.1"),
    ],
)
def test_parse_valid(text: str, expected: str) -> None:
    v = Version(text)
    assert str(v) == expected
    assert Version.parse(text) == v
    assert str(Version.parse(text)) == expected
    assert v == Version(expected)


@pytest.mark.parametrize(
    ("text", "release", "prerelease", "build"),
    [
        ("1.2.3", (1, 2, 3), None, None),
        ("1.2.3-rc.1", (1, 2, 3), "rc.1", None),
        ("1.2.3+b.5", (1, 2, 3), None, "b.5"),
        ("model_v4.5-beta.2+cuda", (4, 5, 0), "beta.2", "cuda"),
        ("1.0rc1", (1, 0, 0), "rc.1", None),
    ],
)
def test_properties(
    text: str, release: tuple[int, int, int], prerelease: str | None, build: str | None
) -> None:
    v = Version(text)
    assert (v.major, v.minor, v.patch) == release
    assert v.release == release
    assert v.prerelease == prerelease
    assert v.build == build
    assert v.is_prerelease is (prerelease is not None)
    assert all(type(n) is int for n in v.release)


def test_str_and_repr() -> None:
    v = Version(" v1.2-rc.1+build.5 ")
    assert str(v) == "1.2.0-rc.1+build.5"
    assert repr(v) == "<Version('1.2.0-rc.1+build.5')>"
    assert repr(Version("3")) == "<Version('3.0.0')>"


def test_version_argument_gives_equal_copy() -> None:
    v = Version("1.2.3-rc.1+b")
    w = Version(v)
    assert w == v
    assert str(w) == str(v)
    assert w.build == "b"
    assert Version.parse(v) == v


def test_parse_is_classmethod_returning_version() -> None:
    assert type(Version.parse("1.0.0")) is Version


def test_without_build() -> None:
    v = Version("1.2.3-rc.1+b.7")
    plain = v.without_build()
    assert str(plain) == "1.2.3-rc.1"
    assert plain.build is None
    assert plain == v
    assert str(v) == "1.2.3-rc.1+b.7"  # unchanged
    assert str(Version("1.0.0").without_build()) == "1.0.0"


# --------------------------------------------------------------------------------------
# Parsing: invalid input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1.2.3.4", "at most 3"),
        ("1.2.3.4rc1", "at most 3"),
        ("abc", "expected SemVer"),
        ("v", "expected SemVer"),
        ("vv1", "expected SemVer"),
        ("1.0.0-", "expected SemVer"),
        ("1.0.0+", "expected SemVer"),
        ("1..0", "expected SemVer"),
        ("1.0.", "expected SemVer"),
        (".1.0", "expected SemVer"),
        ("-1.0.0", "expected SemVer"),
        ("1.0.0-rc..1", "expected SemVer"),
        ("1.0.0-rc.1.", "expected SemVer"),
        ("1.0.0+a..b", "expected SemVer"),
        ("1.0.0-rc.1+", "expected SemVer"),
        ("1.0.0-r c", "expected SemVer"),
        ("1.0.0 beta", "expected SemVer"),
        ("1 .0.0", "expected SemVer"),
        ("1.0.0-é", "expected SemVer"),
        ("1.0.0\n+x", "expected SemVer"),
        ("\u0661.\u0662.\u0663", "expected SemVer"),  # ARABIC-INDIC digits
        ("model_1.0", "expected SemVer"),  # a prefix needs _v / -v
        ("_v1", "expected SemVer"),  # a prefix starts with a letter
        ("9model_v1", "expected SemVer"),
        # leading zeros
        ("01.2.3", "leading zeros"),
        ("1.02.3", "leading zeros"),
        ("1.2.03", "leading zeros"),
        ("v00", "leading zeros"),
        ("1.0.0-rc.01", "leading zeros"),
        ("1.0.0-00", "leading zeros"),
        ("1.0rc01", "leading zeros"),
        ("01.0rc1", "leading zeros"),
        # PEP 440 forms without a SemVer meaning
        ("1!1.0", "epoch"),
        ("0!1.0rc1", "epoch"),
        ("1.0.post1", "post"),
        ("1.0rc1.post1", "post"),
        ("1.0.dev1", "dev"),
        ("1.0rc1.dev0", "dev"),
        ("1.0rc1+local", "local"),
    ],
)
def test_parse_invalid(text: str, reason: str) -> None:
    with pytest.raises(InvalidVersionError) as info:
        Version(text)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, InvalidInputError)
    assert isinstance(info.value, ModelVersionsError)
    message = str(info.value)
    assert repr(text) in message
    assert reason in message
    with pytest.raises(InvalidVersionError):
        Version.parse(text)


def test_huge_number_is_invalid_version_not_plain_value_error() -> None:
    text = "1" * 5000 + ".0.0"
    with pytest.raises(InvalidVersionError, match="too long"):
        Version(text)


@pytest.mark.parametrize("value", [1, 1.0, None, b"1.0.0", ["1.0.0"], (1, 0, 0)])
def test_parse_wrong_type(value: Any) -> None:
    with pytest.raises(InvalidVersionError) as info:
        Version(value)
    assert isinstance(info.value, ValueError)
    assert type(value).__name__ in str(info.value)
    assert repr(value) in str(info.value)


# --------------------------------------------------------------------------------------
# Ordering: fixed examples
# --------------------------------------------------------------------------------------

SPEC_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
]
RELEASE_CHAIN = ["1.0.0", "2.0.0", "2.1.0", "2.1.1"]


@pytest.mark.parametrize("chain", [SPEC_CHAIN, RELEASE_CHAIN], ids=["spec-prerelease", "release"])
def test_spec_precedence_chain(chain: list[str]) -> None:
    vs = [Version(t) for t in chain]
    for (i, a), (j, b) in itertools.product(enumerate(vs), repeat=2):
        assert (a < b) is (i < j), (a, b)
        assert (a > b) is (i > j), (a, b)
        assert (a <= b) is (i <= j), (a, b)
        assert (a >= b) is (i >= j), (a, b)
        assert (a == b) is (i == j), (a, b)
        assert (a != b) is (i != j), (a, b)
        assert ref_cmp(chain[i], chain[j]) == _sign(i - j)
    assert sorted(vs[1::2] + vs[::2]) == vs


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("v9", "v10"),
        ("1.9.0", "1.10.0"),
        ("1.0.9", "1.0.10"),
        ("1.0.0-rc.9", "1.0.0-rc.10"),
        ("1.0.0-2", "1.0.0-10"),
        ("1.0.0-999", "1.0.0-a"),  # numeric < alphanumeric
        ("1.0.0-Z", "1.0.0-a"),  # ASCII order
        ("1.0.0--", "1.0.0-0a"),  # '-' (0x2d) < '0' (0x30)
        ("1.0.0-alpha", "1.0.0-alpha.0"),
        ("1.0.0-rc.1", "1.0.0"),
        ("0.9.9", "1.0.0-alpha"),
        ("1.0rc1", "1.0.0"),
        ("1.0a1", "1.0b1"),
        ("1.0b1", "1.0rc1"),
    ],
)
def test_ordering_pairs(low: str, high: str) -> None:
    a, b = Version(low), Version(high)
    assert a < b and b > a and a <= b and b >= a and a != b
    assert not (a > b or b < a or a == b)


def test_build_metadata_ignored_for_equality_and_hash() -> None:
    a, b, c = Version("1.0.0+a"), Version("1.0.0+b"), Version("1.0.0")
    assert a == b == c
    assert hash(a) == hash(b) == hash(c)
    assert not a < b and not b < a and a <= b and a >= b
    assert Version("1.0.0-rc.1+x") == Version("1.0.0-rc.1+y")
    assert Version("1.0.0-rc.1+x") < Version("1.0.0+a")


def test_hashable_in_set_and_dict() -> None:
    assert len({Version("1.0.0+a"), Version("1.0.0+b"), Version("v1"), Version("1.0.0")}) == 1
    assert len({Version("1.0.0"), Version("1.0.1"), Version("1.0.0-rc.1")}) == 3
    table = {Version("model_v1.2"): "x"}
    assert table[Version("1.2.0+gpu")] == "x"
    assert Version("1.2.0") in table


# --------------------------------------------------------------------------------------
# Comparison with str and foreign types
# --------------------------------------------------------------------------------------


def test_compare_with_str() -> None:
    assert Version("1.2.0") == "v1.2"
    assert operator.eq("v1.2", Version("1.2.0"))  # reflected
    assert Version("1.2.0") != "1.2.1"
    assert Version("1.0.0") < "1.0.1"
    assert Version("1.0.0") <= "1.0.0+x"
    assert Version("2.0.0") > "1.9.9"
    assert Version("2.0.0") >= "v2"
    assert operator.gt("1.0.1", Version("1.0.0"))  # reflected
    assert operator.lt("1.0.0-rc.1", Version("1.0.0"))  # reflected


def test_eq_with_unparsable_str_is_false() -> None:
    assert (Version("1.0.0") == "junk") is False
    assert (Version("1.0.0") != "junk") is True
    assert (Version("1.0.0") == "") is False


@pytest.mark.parametrize("op", [operator.lt, operator.le, operator.gt, operator.ge])
def test_ordering_with_unparsable_str_raises(op: Callable[[Any, Any], bool]) -> None:
    with pytest.raises(InvalidVersionError, match="junk"):
        op(Version("1.0.0"), "junk")
    with pytest.raises(InvalidVersionError, match="junk"):
        op("junk", Version("1.0.0"))


@pytest.mark.parametrize("other", [1, 1.0, None, (1, 0, 0), b"1.0.0", object()])
def test_foreign_types(other: Any) -> None:
    v = Version("1.0.0")
    assert (v == other) is False
    assert (v != other) is True
    assert v.__eq__(other) is NotImplemented
    assert v.__lt__(other) is NotImplemented
    for op in (operator.lt, operator.le, operator.gt, operator.ge):
        with pytest.raises(TypeError):
            op(v, other)
        with pytest.raises(TypeError):
            op(other, v)


# --------------------------------------------------------------------------------------
# Immutability, pickling, copying
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["major", "minor", "patch", "prerelease", "build", "_major", "_key", "extra"]
)
def test_immutable(name: str) -> None:
    v = Version("1.2.3-rc.1+b")
    with pytest.raises(AttributeError):
        setattr(v, name, 9)
    with pytest.raises(AttributeError):
        delattr(v, name)
    assert str(v) == "1.2.3-rc.1+b"
    assert not hasattr(v, "__dict__")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle(protocol: int) -> None:
    v = Version("1.2.3-rc.1+build.5")
    w = pickle.loads(pickle.dumps(v, protocol=protocol))
    assert w == v and str(w) == str(v) and hash(w) == hash(v)
    assert v.__reduce__() == (Version, ("1.2.3-rc.1+build.5",))


def test_copy() -> None:
    v = Version("1.2.3-rc.1+b")
    for w in (copy.copy(v), copy.deepcopy(v)):
        assert w == v and str(w) == str(v)
    assert copy.deepcopy([v])[0] == v


# --------------------------------------------------------------------------------------
# bump
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "part", "expected"),
    [
        ("1.2.3", "major", "2.0.0"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "patch", "1.2.4"),
        ("0.0.0", "patch", "0.0.1"),
        ("1.2.3+b", "patch", "1.2.4"),
        ("1.2.3-rc.1", "patch", "1.2.3"),
        ("1.2.3-rc.1", "minor", "1.3.0"),
        ("1.2.3-rc.1", "major", "2.0.0"),
        ("1.3.0-rc.1", "minor", "1.3.0"),
        ("1.3.1-rc.1", "minor", "1.4.0"),
        ("1.3.0-rc.1", "patch", "1.3.0"),
        ("2.0.0-rc.1", "major", "2.0.0"),
        ("2.0.0-rc.1", "minor", "2.0.0"),
        ("2.0.0-rc.1", "patch", "2.0.0"),
        ("2.1.0-rc.1", "major", "3.0.0"),
        ("2.0.1-rc.1", "major", "3.0.0"),
        ("2.0.0-rc.1+b", "major", "2.0.0"),
    ],
)
def test_bump(start: str, part: str, expected: str) -> None:
    v = Version(start)
    bumped = v.bump(part)
    assert str(bumped) == expected
    assert bumped.build is None
    assert bumped > v
    assert str(v) == start  # the original is untouched


@pytest.mark.parametrize("part", ["build", "Major", "", "prerelease", "pre"])
def test_bump_invalid_part(part: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Version("1.0.0").bump(part)
    message = str(info.value)
    assert repr(part) in message
    for allowed in ("major", "minor", "patch"):
        assert repr(allowed) in message


# --------------------------------------------------------------------------------------
# Properties (hypothesis)
# --------------------------------------------------------------------------------------


@given(semver_strings)
def test_roundtrip(text: str) -> None:
    v = Version(text)
    assert str(v) == text  # canonical input prints unchanged, build metadata kept
    assert Version(str(v)) == v
    assert str(Version(str(v))) == str(v)
    assert repr(v) == f"<Version({text!r})>"


@given(semver_parts())
def test_fields_match_generated_parts(parts: tuple[int, int, int, str | None, str | None]) -> None:
    v = Version(canonical(parts))
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == parts


@given(any_semver, any_semver)
def test_agrees_with_reference(a: str, b: str) -> None:
    va, vb = Version(a), Version(b)
    expected = ref_cmp(a, b)
    assert (va < vb) is (expected < 0)
    assert (va <= vb) is (expected <= 0)
    assert (va == vb) is (expected == 0)
    assert (va != vb) is (expected != 0)
    assert (va > vb) is (expected > 0)
    assert (va >= vb) is (expected >= 0)
    assert (va < b) is (expected < 0)  # and against the string form


@given(versions, versions)
def test_antisymmetry_and_totality(a: Version, b: Version) -> None:
    assert [a < b, a == b, a > b].count(True) == 1
    if a <= b <= a:
        assert a == b
    assert (a < b) is (b > a)
    assert (a <= b) is (b >= a)


@given(versions, versions, versions)
def test_transitivity(a: Version, b: Version, c: Version) -> None:
    x, y, z = sorted([a, b, c])
    assert x <= y <= z and x <= z
    if x < y <= z:
        assert x < z
    if a <= b <= c:
        assert a <= c
    if a < b < c:
        assert a < c
    if a == b == c:
        assert a == c


@given(versions, versions)
def test_hash_consistent_with_eq(a: Version, b: Version) -> None:
    if a == b:
        assert hash(a) == hash(b)
    assert hash(a) == hash(Version(str(a))) == hash(a.without_build())


@given(st.lists(any_semver, max_size=12))
def test_sort_matches_reference(texts: list[str]) -> None:
    by_version = [str(v) for v in sorted(Version(t) for t in texts)]
    by_reference = sorted(texts, key=functools.cmp_to_key(ref_cmp))
    # Equal versions may differ in build metadata, so compare positions by precedence.
    assert all(ref_cmp(x, y) == 0 for x, y in zip(by_version, by_reference, strict=True))
    assert sorted(texts, key=Version) == sorted(texts, key=functools.cmp_to_key(ref_cmp))


@given(versions)
def test_pickle_roundtrip(v: Version) -> None:
    w = pickle.loads(pickle.dumps(v))
    assert w == v and str(w) == str(v) and hash(w) == hash(v)


@given(versions, st.sampled_from(["major", "minor", "patch"]))
def test_bump_is_greater(v: Version, part: str) -> None:
    bumped = v.bump(part)
    assert bumped > v
    assert bumped.build is None and bumped.prerelease is None
    if not v.is_prerelease:
        index = ["major", "minor", "patch"].index(part)
        expected = [*v.release[:index], v.release[index] + 1, 0, 0][:3]
        assert bumped.release == tuple(expected)


@given(semver_parts(), st.data())
def test_lenient_forms_equal_canonical(
    parts: tuple[int, int, int, str | None, str | None], data: st.DataObject
) -> None:
    major, minor, patch, pre, build = parts
    full = canonical(parts)
    tail = (f"-{pre}" if pre else "") + (f"+{build}" if build else "")
    forms = [full, f"v{full}", f"V{full}", f"  {full}\t"]
    if patch == 0:
        forms.append(f"{major}.{minor}{tail}")
        if minor == 0:
            forms.append(f"v{major}{tail}")
    # Model-name prefix.  The version starts at the *last* "_v<digit>"/"-v<digit>", so skip
    # tails that contain one themselves, and prefixes that read as a bare version ("v1.0").
    prefix = data.draw(
        st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,8}", fullmatch=True).filter(
            lambda p: not re.match(r"[vV][0-9]", p)
        )
    )
    sep = data.draw(st.sampled_from(["_v", "-v", "_V", "-V"]))
    if not re.search(r"[_-][vV][0-9]", tail):
        forms.append(f"{prefix}{sep}{full}")
    for form in forms:
        v = Version(form)
        assert v == Version(full), form
        assert str(v) == full, form


def test_import_does_not_import_packaging() -> None:
    code = "import sys, modelversions.version; sys.exit('packaging' in sys.modules)"
    root = pathlib.Path(__file__).resolve().parent.parent
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
