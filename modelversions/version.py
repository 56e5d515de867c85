"""Semantic versions for models: parsing, SemVer 2.0.0 ordering and bumps.

A :class:`Version` is an immutable, hashable ``MAJOR.MINOR.PATCH[-prerelease][+build]``
value ordered by SemVer precedence (https://semver.org/#spec-item-11).  Parsing is
lenient about the spellings people write for models (``"v3"``, ``"1.0"``,
``"churn-v2"``, ``"model_v1.0"``, PEP 440 ``"1.0rc1"``) but always prints the full
canonical SemVer form.
"""

from __future__ import annotations

import re
from typing import Any

from modelversions.errors import InvalidInputError, InvalidVersionError

__all__ = ["MAX_LENGTH", "MAX_NUMBER", "Version"]

#: Longest version text accepted, and longest canonical form (characters).
MAX_LENGTH = 128
#: Largest MAJOR, MINOR, PATCH or numeric pre-release identifier (a signed 64-bit int,
#: what databases and most other languages can hold).
MAX_NUMBER = 2**63 - 1

# Numbers are matched loosely (``[0-9]+``) so that leading zeros can be reported with a
# precise message instead of a generic "invalid version".
_SEMVER = (
    r"(?P<major>[0-9]+)"
    r"(?:\.(?P<minor>[0-9]+)(?:\.(?P<patch>[0-9]+))?)?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
# Model-name prefix: ``name_v`` / ``name-v``.  The greedy prefix makes the *last*
# ``_v<digit>`` / ``-v<digit>`` start the version ("resnet_v2_v1.0" is 1.0.0).
_PREFIX = r"[A-Za-z][A-Za-z0-9_.-]*[_-][vV]"
# Patterns, compiled on first use by re's own cache (compiling all four costs a fresh
# process ~1 ms; reading stored versions mostly takes records' fast path, not these).
_BARE = r"[vV]?" + _SEMVER
_PREFIXED = _PREFIX + _SEMVER
_PREFIXED_PEP440 = r"(?s)" + _PREFIX + r"(?P<rest>[0-9].*)"
_LEADING_ZERO = r"(?<![0-9])0[0-9]"
_PARTS = ("major", "minor", "patch")
_ACCEPTED = (
    "expected SemVer 'MAJOR.MINOR.PATCH[-prerelease][+build]' "
    "(also accepted: '1.2', 'v3', 'model_v1.0', PEP 440 '1.0rc1')"
)

_PreKey = tuple[tuple[int, int, str], ...]
_Key = tuple[int, int, int, int, _PreKey]


def _invalid(text: object, reason: str) -> InvalidVersionError:
    shown = repr(text)
    if len(shown) > 2 * MAX_LENGTH:
        shown = shown[:MAX_LENGTH] + "..."
    return InvalidVersionError(f"Invalid version: {shown}: {reason}")


def _number(text: object, digits: str, what: str) -> int:
    if len(digits) > 1 and digits[0] == "0":
        raise _invalid(text, f"leading zeros are not allowed in {what} {digits!r}")
    if len(digits) > len(str(MAX_NUMBER)) or int(digits) > MAX_NUMBER:
        raise _invalid(text, f"{what} is too large (at most {MAX_NUMBER})")
    return int(digits)


def _parse_semver(text: str, stripped: str) -> tuple[int, int, int, str | None, str | None] | None:
    match = re.fullmatch(_BARE, stripped) or re.fullmatch(_PREFIXED, stripped)
    if match is None:
        return None
    major = _number(text, match["major"], "major")
    minor = _number(text, match["minor"] or "0", "minor")
    patch = _number(text, match["patch"] or "0", "patch")
    pre: str | None = match["pre"]
    if pre is not None:
        for ident in pre.split("."):
            if ident.isdigit():
                _number(text, ident, "pre-release identifier")
    return major, minor, patch, pre, match["build"]


def _parse_pep440(text: str, stripped: str) -> tuple[int, int, int, str | None, str | None]:
    """Map a PEP 440 pre-release spelling (``1.0rc1``) to SemVer, or raise."""
    candidate = stripped[1:] if stripped[:1] in ("v", "V") else stripped
    if not candidate[:1].isdigit():
        prefixed = re.fullmatch(_PREFIXED_PEP440, stripped)
        if prefixed is None:
            raise _invalid(text, _ACCEPTED)
        candidate = prefixed["rest"]
    try:  # imported lazily: packaging is slow to import and rarely needed
        from packaging.version import InvalidVersion
        from packaging.version import Version as Pep440Version
    except ImportError:  # pragma: no cover - packaging is optional
        raise _invalid(text, _ACCEPTED) from None
    try:
        pep = Pep440Version(candidate)
    except InvalidVersion:
        raise _invalid(text, _ACCEPTED) from None
    zero = re.search(_LEADING_ZERO, candidate)
    if zero is not None:
        raise _invalid(text, "leading zeros are not allowed in numbers")
    if "!" in candidate or pep.epoch:
        raise _invalid(text, "PEP 440 epochs ('N!') have no SemVer equivalent")
    if len(pep.release) > len(_PARTS):
        raise _invalid(text, f"{len(pep.release)} release numbers; at most 3 (MAJOR.MINOR.PATCH)")
    if pep.post is not None:
        raise _invalid(text, "PEP 440 post-releases have no SemVer equivalent")
    if pep.dev is not None:
        raise _invalid(
            text, "PEP 440 dev releases have no SemVer equivalent; use a pre-release like '-dev.1'"
        )
    if pep.local is not None:
        raise _invalid(
            text, "PEP 440 local labels have no SemVer equivalent; use SemVer build metadata"
        )
    if pep.pre is None:
        raise _invalid(text, _ACCEPTED)
    major, minor, patch = (*pep.release, 0, 0)[:3]
    letter, number = pep.pre
    if max(major, minor, patch, number) > MAX_NUMBER:
        raise _invalid(text, f"a number is too large (at most {MAX_NUMBER})")
    return major, minor, patch, f"{letter}.{number}", None


def _pre_key(pre: str | None) -> tuple[int, _PreKey]:
    # A release (no pre-release) sorts after every pre-release of the same MAJOR.MINOR.PATCH.
    if pre is None:
        return 1, ()
    # Numeric identifiers sort before alphanumeric ones; numbers numerically, text in ASCII.
    return 0, tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in pre.split("."))


class Version:
    """An immutable SemVer 2.0.0 version ordered by SemVer precedence.

    Args:
        text: a version string (see :meth:`parse` for the accepted spellings) or a
            :class:`Version` (an equal copy is made).

    Raises:
        InvalidVersionError: ``text`` is not a version, or not a ``str``/``Version``.

    >>> v = Version("model_v1.2-rc.1+gpu")
    >>> v
    <Version('1.2.0-rc.1+gpu')>
    >>> v.release, v.prerelease, v.build
    ((1, 2, 0), 'rc.1', 'gpu')
    >>> v < "1.2.0" < Version("v10") and Version("v10") > "v9"
    True
    >>> Version("1.0.0+a") == Version("1.0.0+b")
    True
    """

    __slots__ = ("_build", "_key", "_major", "_minor", "_patch", "_pre")

    _major: int
    _minor: int
    _patch: int
    _pre: str | None
    _build: str | None
    _key: _Key

    def __init__(self, text: str | Version) -> None:
        if isinstance(text, Version):
            self._set(text._major, text._minor, text._patch, text._pre, text._build)
            return
        if not isinstance(text, str):
            raise InvalidVersionError(
                f"Invalid version: {text!r} is a {type(text).__name__}, expected str or Version"
            )
        if len(text) > MAX_LENGTH:
            raise _invalid(text, f"too long ({len(text)} characters; at most {MAX_LENGTH})")
        stripped = text.strip()
        if not stripped:
            raise _invalid(text, "empty string; " + _ACCEPTED)
        parts = _parse_semver(text, stripped) or _parse_pep440(text, stripped)
        self._set(*parts)
        if len(str(self)) > MAX_LENGTH:
            raise _invalid(text, f"its canonical form {self} is longer than {MAX_LENGTH}")

    def _set(self, major: int, minor: int, patch: int, pre: str | None, build: str | None) -> None:
        setter = object.__setattr__
        setter(self, "_major", major)
        setter(self, "_minor", minor)
        setter(self, "_patch", patch)
        setter(self, "_pre", pre)
        setter(self, "_build", build)
        setter(self, "_key", (major, minor, patch, *_pre_key(pre)))

    @classmethod
    def _from_parts(
        cls, major: int, minor: int, patch: int, pre: str | None = None, build: str | None = None
    ) -> Version:
        version = cls.__new__(cls)
        version._set(major, minor, patch, pre, build)
        return version

    @classmethod
    def parse(cls, text: str | Version) -> Version:
        """Parse ``text`` into a Version; same as ``Version(text)``.

        Accepted: SemVer ``MAJOR.MINOR.PATCH[-pre][+build]`` with surrounding whitespace;
        a leading ``v``/``V``; missing minor/patch (``"v3"``, ``"1.2-rc.1"``); a model-name
        prefix ending in ``_v``/``-v`` (``"churn-v2"``); PEP 440 pre-releases (``"1.0rc1"``).

        Raises:
            InvalidVersionError: leading zeros, empty identifiers, more than three numbers,
                PEP 440 epochs/post/dev/local parts, or anything else that is not a version.

        >>> Version.parse("churn-v2")
        <Version('2.0.0')>
        >>> str(Version.parse(" 2.1a3 "))
        '2.1.0-a.3'
        """
        return cls(text)

    # -- read-only properties -------------------------------------------------------------

    @property
    def major(self) -> int:
        """The MAJOR number."""
        return self._major

    @property
    def minor(self) -> int:
        """The MINOR number."""
        return self._minor

    @property
    def patch(self) -> int:
        """The PATCH number."""
        return self._patch

    @property
    def prerelease(self) -> str | None:
        """The pre-release part without the ``-`` (``"rc.1"``), or ``None``."""
        return self._pre

    @property
    def build(self) -> str | None:
        """The build metadata without the ``+``, or ``None``; ignored when comparing."""
        return self._build

    @property
    def is_prerelease(self) -> bool:
        """Whether the version has a pre-release part."""
        return self._pre is not None

    @property
    def release(self) -> tuple[int, int, int]:
        """``(major, minor, patch)``."""
        return self._major, self._minor, self._patch

    # -- derived versions -----------------------------------------------------------------

    def without_build(self) -> Version:
        """Return this version without build metadata (``self`` if it has none)."""
        if self._build is None:
            return self
        return Version._from_parts(self._major, self._minor, self._patch, self._pre)

    def bump(self, part: str) -> Version:
        """Return the next version for ``part`` (like node-semver ``inc``), without build.

        A release increments ``part`` and zeroes the parts after it.  A pre-release that
        is already "on" ``part`` is finalized instead (``1.3.0-rc.1`` bump minor is
        ``1.3.0``).  The result is always greater than ``self``.

        Args:
            part: ``"major"``, ``"minor"`` or ``"patch"``.

        Raises:
            InvalidInputError: ``part`` is not one of those.
            InvalidVersionError: the bumped number would exceed ``MAX_NUMBER``.

        >>> [str(Version("1.2.3").bump(p)) for p in ("major", "minor", "patch")]
        ['2.0.0', '1.3.0', '1.2.4']
        >>> str(Version("1.3.0-rc.1").bump("minor")), str(Version("1.3.1-rc.1").bump("minor"))
        ('1.3.0', '1.4.0')
        """
        major, minor, patch, pre = self._major, self._minor, self._patch, self._pre is not None
        if part == "major":
            parts = (major, 0, 0) if pre and minor == 0 and patch == 0 else (major + 1, 0, 0)
        elif part == "minor":
            parts = (major, minor, 0) if pre and patch == 0 else (major, minor + 1, 0)
        elif part == "patch":
            parts = (major, minor, patch if pre else patch + 1)
        else:
            raise InvalidInputError(
                f"Invalid bump part: {part!r}; expected one of {', '.join(map(repr, _PARTS))}"
            )
        if max(parts) > MAX_NUMBER:
            raise InvalidVersionError(
                f"cannot bump the {part} number of {self}: it would exceed {MAX_NUMBER}"
            )
        return Version._from_parts(*parts)

    # -- text -----------------------------------------------------------------------------

    def __str__(self) -> str:
        text = f"{self._major}.{self._minor}.{self._patch}"
        if self._pre is not None:
            text += f"-{self._pre}"
        if self._build is not None:
            text += f"+{self._build}"
        return text

    def __repr__(self) -> str:
        return f"<Version({str(self)!r})>"

    # -- comparison (build metadata ignored) ----------------------------------------------

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Version):
            return self._key == other._key
        if isinstance(other, str):
            try:
                return self._key == Version(other)._key
            except InvalidVersionError:
                return False
        return NotImplemented

    def __lt__(self, other: object) -> bool:
        key = _other_key(other)
        return NotImplemented if key is None else self._key < key

    def __le__(self, other: object) -> bool:
        key = _other_key(other)
        return NotImplemented if key is None else self._key <= key

    def __gt__(self, other: object) -> bool:
        key = _other_key(other)
        return NotImplemented if key is None else self._key > key

    def __ge__(self, other: object) -> bool:
        key = _other_key(other)
        return NotImplemented if key is None else self._key >= key

    # -- immutability, pickling, copying --------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Version is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Version is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[type[Version], tuple[str]]:
        return (Version, (str(self),))

    def __copy__(self) -> Version:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Version:
        return self


def _other_key(other: object) -> _Key | None:
    """The comparison key of a Version or version string; None for foreign types."""
    if isinstance(other, Version):
        return other._key
    if isinstance(other, str):
        return Version(other)._key
    return None
