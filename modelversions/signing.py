"""Signed registries: keys, the signature of each history entry and snapshot, attest.

A registry opened with a key signs every history entry and snapshot it writes with
HMAC-SHA256, and refuses, before any artifact is opened, every entry or snapshot it
would use that no configured key signed. Checksums catch damage; signatures catch a
writer of the storage who does not hold a key. See ``docs/security.md``.

**The canonical form.** An entry or snapshot is a JSON object; its *canonical bytes*
are that object without its ``sha256`` seal and without its ``signature`` field,
encoded as the library encodes everything it stores (sorted keys, no spaces, ASCII,
no NaN). The signature is
``HMAC-SHA256(key, b"modelversions signature v1\\n" + kind + b"\\n" + canonical)``,
``kind`` being ``entry`` or ``snapshot``. It is stored as the object's
``signature`` field (``{"alg": "hmac-sha256", "key_id": ..., "mac": ...}``), and the
seal is computed last, over the bytes that include the signature. So the signature
never covers the seal and the seal never feeds the signature: no circle. A reader
checks the seal on the raw bytes, parses, removes both fields, re-encodes what it
parsed and checks the MAC over that, so what is verified is exactly what is used
(a snapshot's MAC is first checked over its stored bytes: :meth:`Keyring.check_stored`).

**What an entry covers.** Each entry records ``prev``, the sha256 of the entry before
it (:mod:`modelversions._state`), so one signed entry pins every byte of the chain
below it, and a save entry records its artifact's sha256 and size. A snapshot records
``head_sha256``, the hash of the entry it was built from.

**Attest.** An ``attest`` entry, signed, records ``chain_sha256``: the sha256 of the
hashes of every entry before it (one hex digest and a newline each, from entry 1). A
reader that meets one accepts the unsigned entries before it; a reader that replays
from entry 1 also checks ``chain_sha256`` against what it read.

This module never unpickles, and reads storage only to check a pinned head, for
:func:`attest` and for :func:`signatures`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from modelversions import _codec, _state
from modelversions._names import check_name
from modelversions._state import ModelState
from modelversions._util import SIGNING_KEY_ENV, storage
from modelversions.errors import (
    ConcurrentUpdateError,
    IntegrityError,
    InvalidInputError,
    ModelNotFoundError,
    SignatureError,
)

if TYPE_CHECKING:
    from modelversions._commit import Log
    from modelversions._events import Payload
    from modelversions.fsck import VerifyReport
    from modelversions.records import Event

__all__ = ["ENV_KEY", "EntrySignature", "key_id"]

ENV_KEY = SIGNING_KEY_ENV
MIN_KEY_BYTES = 32
ALG = "hmac-sha256"
ATTEST = "attest"
_FIELD = "signature"
_DOMAIN = b"modelversions signature v1\n"
_ENTRY = b"entry"
_SNAPSHOT = b"snapshot"

Key = bytes | str
Pins = Mapping[str, tuple[int, str]]


def _key_bytes(key: object, what: str) -> bytes:
    if isinstance(key, str):
        data = key.encode()
    elif isinstance(key, (bytes, bytearray, memoryview)):
        data = bytes(key)
    else:
        raise InvalidInputError(f"{what} must be bytes or str, not {type(key).__name__}")
    if len(data) < MIN_KEY_BYTES:
        raise InvalidInputError(
            f"{what} must be at least {MIN_KEY_BYTES} bytes, not {len(data)}: use a random "
            'key, e.g. python -c "import secrets; print(secrets.token_hex(32))"'
        )
    return data


def _kid(key: bytes) -> str:
    return hmac.new(key, b"modelversions key id", hashlib.sha256).hexdigest()[:16]


def key_id(key: Key) -> str:
    """The public id of a signing key: 16 hex digits derived from it (never the key).

    >>> key_id("k" * 32) == key_id(b"k" * 32) != key_id("j" * 32)
    True
    """
    return _kid(_key_bytes(key, "key"))


def canonical(payload: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: ``payload`` (without seal and signature) encoded."""
    return _codec.canonical_json(payload)


def _is_hex(text: object, n: int) -> bool:
    return isinstance(text, str) and len(text) == n and all(c in "0123456789abcdef" for c in text)


class Keyring:
    """The keys of one registry: the one it signs with, and every one it accepts."""

    __slots__ = ("_keys", "signing_id")

    def __init__(self, signing_key: Key | None, verify_keys: Iterable[Key]) -> None:
        self._keys: dict[str, bytes] = {}
        self.signing_id: str | None = None
        if signing_key is not None:
            key = _key_bytes(signing_key, "signing_key")
            self.signing_id = _kid(key)
            self._keys[self.signing_id] = key
        for i, extra in enumerate(verify_keys):
            key = _key_bytes(extra, f"verify_keys[{i}]")
            self._keys.setdefault(_kid(key), key)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __repr__(self) -> str:  # never the keys themselves
        return f"Keyring(signing={self.signing_id!r}, accepts={list(self._keys)!r})"

    def _mac(self, key: bytes, kind: bytes, body: bytes) -> str:
        return hmac.new(key, _DOMAIN + kind + b"\n" + body, hashlib.sha256).hexdigest()

    def sign(self, kind: bytes, body: bytes) -> bytes:
        """The stored bytes of canonical ``body``: signed, then sealed."""
        if self.signing_id is None:
            raise InvalidInputError(
                "this registry has verify keys but no signing key: it can read, not write "
                f"(pass signing_key= or set {ENV_KEY})"
            )
        mac = self._mac(self._keys[self.signing_id], kind, body)
        sig = {"alg": ALG, "key_id": self.signing_id, "mac": mac}
        head = json.dumps({_FIELD: sig}, separators=(",", ":"), sort_keys=True).encode()
        return _state.seal(head[:-1] + b"," + body[1:])

    def check_stored(self, kind: bytes, data: bytes) -> bool:
        """True when sealed ``data``, as :meth:`sign` stores it, holds a MAC by one of
        these keys over exactly the bytes it stores after the signature: the canonical
        bytes, so it proves what :meth:`check` does, with nothing parsed. False decides
        nothing (another layout, an unknown key, altered bytes): :meth:`check` does."""
        signed = _codec.signed_body(data)
        key = None if signed is None else self._keys.get(signed[0])
        if signed is None or key is None:
            return False
        mac = hmac.new(key, _DOMAIN + kind + b"\n{", hashlib.sha256)
        mac.update(signed[2])
        return hmac.compare_digest(mac.hexdigest(), signed[1])

    def check(self, kind: bytes, payload: dict[str, Any], where: str) -> str | None:
        """Remove and check ``payload``'s signature; the key id that made it, None if none.

        Raises SignatureError (naming ``where``) for a malformed signature, one by a key
        this registry does not hold, or one that does not match the content.
        """
        if _FIELD not in payload:
            return None
        sig = payload.pop(_FIELD)
        if (
            not isinstance(sig, dict)
            or set(sig) != {"alg", "key_id", "mac"}
            or sig["alg"] != ALG
            or not _is_hex(sig["key_id"], 16)
            or not _is_hex(sig["mac"], 64)
        ):
            raise SignatureError(f"{where} has a malformed signature: {str(sig)[:200]!r}")
        kid: str = sig["key_id"]
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(
                f"{where} is signed with key id {kid}, which is not one of this registry's "
                f"keys (key ids {', '.join(self._keys)}): a forgery, or a key missing from "
                "verify_keys"
            )
        try:
            body = canonical(payload)
        except (TypeError, ValueError) as exc:
            raise SignatureError(f"{where} cannot be signed content ({exc})") from exc
        if not hmac.compare_digest(sig["mac"], self._mac(key, kind, body)):
            raise SignatureError(
                f"{where} has a signature by key id {kid} that does not match its content: "
                "it was altered or forged"
            )
        return kid


def _claimed(payload: dict[str, Any]) -> str | None:
    """Remove the signature of ``payload`` unchecked; the key id it names, if any."""
    sig = payload.pop(_FIELD, None)
    kid = sig.get("key_id") if isinstance(sig, dict) else None
    return kid if isinstance(kid, str) else None


class Tracker:
    """Which entries of one replay (entries applied in order) a signature covers.

    ``start`` is the seq the replay starts after (0: from entry 1, so the hash of the
    whole chain is kept and an attestation's ``chain_sha256`` is checked). Unsigned
    entries are applied (applying is pure data) and stay *uncovered* until a signed
    attestation follows; :meth:`refusal` names the first one still uncovered.
    """

    def __init__(
        self, keyring: Keyring | None, *, start: int, lenient: bool = False, record: bool = False
    ) -> None:
        self.keyring = keyring
        self.lenient = lenient
        self.chain = hashlib.sha256() if start == 0 else None
        self.uncovered: list[tuple[int, str, bool]] = []  # (seq, key, has "prev")
        self.kids: dict[int, str | None] | None = {} if record else None
        self.attested: set[int] = set()

    def apply(self, state: ModelState, payload: dict[str, Any], key: str, sha: str) -> None:
        """Check ``payload``'s signature, apply it to ``state``, then note it."""
        kid = self.check(payload, key)
        try:
            state.apply(payload, sha256=sha)
        except IntegrityError as exc:
            # A broken chain after an unsigned entry: the unsigned entry is the culprit.
            refusal = self.refusal()
            if refusal is None:
                raise
            raise SignatureError(f"{refusal}; and {exc}") from exc
        self.note(payload, key, sha, kid)

    def check(self, payload: dict[str, Any], key: str) -> str | None:
        if self.keyring is None:
            return _claimed(payload)
        kid = self.keyring.check(_ENTRY, payload, key)
        if kid is not None and payload.get("action") == ATTEST:
            self._check_attestation(payload, key)
        return kid

    def _check_attestation(self, payload: Mapping[str, Any], key: str) -> None:
        if self.chain is not None:
            if payload.get("chain_sha256") != self.chain.hexdigest():
                raise SignatureError(
                    f"{key} attests a history that hashes to {payload.get('chain_sha256')!r}, "
                    f"but the entries before it hash to {self.chain.hexdigest()}: an entry "
                    "before it was replaced"
                )
        elif any(not chained for _seq, _key, chained in self.uncovered):
            raise SignatureError(
                f"{key} attests entries that do not record their predecessor's hash; "
                "read the model from entry 1 (remove its snapshots) to check them"
            )

    def note(self, payload: Mapping[str, Any], key: str, sha: str, kid: str | None) -> None:
        """After ``payload`` (entry ``key``, bytes hashing to ``sha``) was applied."""
        seq = int(payload["seq"])
        if self.kids is not None:
            self.kids[seq] = kid
        if kid is None:
            if self.keyring is not None:
                self.uncovered.append((seq, key, "prev" in payload))
        elif payload.get("action") == ATTEST and self.keyring is not None:
            self.attested.update(s for s, _k, _c in self.uncovered)
            self.uncovered.clear()
        if self.chain is not None:
            self.chain.update(sha.encode() + b"\n")

    def refusal(self) -> SignatureError | None:
        """The error for the first entry no signature covers; None if all are covered."""
        if self.keyring is None or self.lenient or not self.uncovered:
            return None
        seq, key, _chained = self.uncovered[0]
        more = len(self.uncovered) - 1
        return SignatureError(
            f"{key} is not signed, and no signed attestation after it covers it"
            + (f" (nor {more} later unsigned entries)" if more else "")
            + ": this registry has signing keys and refuses it (a forged entry, or one "
            f"written without the key; run attest if it is genuine) [entry {seq}]"
        )


def check_pin(read: Callable[[str], bytes], state: ModelState, pin: tuple[int, str]) -> str | None:
    """Why ``state`` is not at or past pinned head ``pin``; None if it is."""
    seq, sha = pin
    key = _state.log_key(state.name, seq)
    if state.seq < seq:
        return (
            f"model {state.name!r} has {state.seq} history entries, but its head is pinned "
            f"at entry {seq} ({key}): the newest entries were removed (truncated history)"
        )
    actual = state.head_sha256 if state.seq == seq else None
    if actual is None:
        try:
            with storage(f"reading {key}"):
                actual = _state.entry_sha256(read(key))
        except FileNotFoundError:
            actual = "missing"
    if actual != sha:
        return f"{key} has sha256 {actual}, not the pinned {sha}: the history was rewritten"
    return None


def check_pins(pins: object, what: str) -> dict[str, tuple[int, str]]:
    """``pins`` as a dict of model name -> (seq, sha256), checked (InvalidInputError)."""
    if pins is None:
        return {}
    if not isinstance(pins, Mapping):
        raise InvalidInputError(f"{what} must be a mapping of name -> (seq, sha256)")
    out = {}
    for name, pin in pins.items():
        check_name(name)
        if (
            not isinstance(pin, (tuple, list))
            or len(pin) != 2
            or not isinstance(pin[0], int)
            or isinstance(pin[0], bool)
            or pin[0] < 1
            or not _is_hex(pin[1], 64)
        ):
            raise InvalidInputError(
                f"{what}[{name!r}] must be (seq >= 1, sha256 hex) as head() returns, not {pin!r}"
            )
        out[name] = (pin[0], pin[1])
    return out


class Guard:
    """What a :class:`~modelversions._commit.Log` consults when keys or pins are set.

    It signs what the log writes, checks what it reads (entries through a
    :class:`Tracker` per model, snapshots whole) and checks pinned heads.
    """

    def __init__(self, keyring: Keyring | None, pins: Pins, *, lenient: bool = False) -> None:
        self.keyring = keyring
        self.pins = dict(pins)
        self.lenient = lenient
        self.trackers: dict[str, Tracker] = {}
        self.confirmed: set[str] = set()

    def relaxed(self) -> Guard:
        """The same keys, accepting unsigned entries and snapshots (for attest)."""
        return Guard(self.keyring, {}, lenient=True)

    def tracker(self, start: int, *, record: bool = False) -> Tracker:
        return Tracker(self.keyring, start=start, lenient=self.lenient, record=record)

    # -- writing
    def check_writable(self) -> None:
        if self.keyring is not None and self.keyring.signing_id is None:
            self.keyring.sign(_ENTRY, b"{}")  # raises InvalidInputError, says why

    def encode_entry(self, payload: Mapping[str, Any]) -> bytes:
        if self.keyring is None:
            return _state.encode(payload)
        return self.keyring.sign(_ENTRY, canonical(payload))

    def encode_snapshot(self, state: ModelState, *, share: bool = True) -> bytes:
        keyring = self.keyring
        if keyring is None:
            return state.encode_snapshot(share=share)
        # The head is signed; it holds every block's sha256 (see modelversions._blocks).
        return state.encode_snapshot(seal=lambda head: keyring.sign(_SNAPSHOT, head), share=share)

    # -- reading
    def snapshot_bytes_ok(self, data: bytes) -> bool:
        """Whether snapshot ``data`` may be read unparsed: no keys, or its stored bytes
        are signed. False: decode it and call :meth:`check_snapshot`."""
        return self.keyring is None or self.keyring.check_stored(_SNAPSHOT, data)

    def check_snapshot(self, payload: dict[str, Any], key: str) -> None:
        if self.keyring is None:
            _claimed(payload)
            return
        if self.keyring.check(_SNAPSHOT, payload, key) is None and not self.lenient:
            raise SignatureError(f"{key} is not signed: ignored (a snapshot is a cache)")

    def start(self, state: ModelState) -> None:
        """``state`` is a fresh read (a snapshot, or empty): track from there."""
        self.trackers[state.name] = self.tracker(state.seq)
        self.confirmed.discard(state.name)

    def apply(self, state: ModelState, payload: dict[str, Any], key: str, sha: str) -> None:
        self.trackers[state.name].apply(state, payload, key, sha)

    def applied_own(self, state: ModelState, payload: Mapping[str, Any], sha: str) -> None:
        """The log applied an entry it just wrote (signed with our key, if any)."""
        tracker = self.trackers[state.name]
        kid = None if self.keyring is None else self.keyring.signing_id
        tracker.note(payload, _state.log_key(state.name, state.seq), sha, kid)

    def finish(self, state: ModelState, read: Callable[[str], bytes]) -> None:
        """After a refresh: refuse an uncovered entry, or a head behind its pin."""
        refusal = self.trackers[state.name].refusal()
        if refusal is not None:
            raise refusal
        pin = self.pins.get(state.name)
        if pin is not None and state.name not in self.confirmed:
            why = check_pin(read, state, pin)
            if why is not None:
                raise IntegrityError(why)
            self.confirmed.add(state.name)


def make_guard(
    *, signing_key: Key | None, verify_keys: Iterable[Key], trusted_only: bool, pins: object
) -> Guard | None:
    """The guard for a registry's options; None when there is nothing to guard."""
    if signing_key is None:
        signing_key = os.environ.get(ENV_KEY) or None
    if isinstance(verify_keys, (str, bytes)):
        raise InvalidInputError("verify_keys must be a list of keys, not one key")
    keyring = Keyring(signing_key, list(verify_keys)) if signing_key or verify_keys else None
    if trusted_only and keyring is None:
        raise InvalidInputError(
            f"trusted_only=True needs a key: pass signing_key= or verify_keys=, or set {ENV_KEY}"
        )
    checked = check_pins(pins, "expect_heads")
    if keyring is None and not checked:
        return None
    return Guard(keyring, checked)


@dataclasses.dataclass(frozen=True, slots=True)
class EntrySignature:
    """Whether one history entry is signed, as :meth:`ModelRegistry.signatures` reports.

    ``status`` is ``signed`` (a valid signature by one of the registry's keys),
    ``attested`` (unsigned, covered by a later signed attestation), ``unsigned``, or
    ``unverified`` (it names ``key_id`` but the registry has no key to check it).
    """

    seq: int
    key_id: str | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "status": self.status}


def _read_or_none(log: Log, key: str) -> bytes | None:
    try:
        with storage(f"reading {key}"):
            return log.backend.read(key)
    except FileNotFoundError:
        return None


def _replay(log: Log, name: str, tracker: Tracker) -> ModelState:
    """Replay ``name`` from entry 1 through ``tracker``; ModelNotFoundError if empty."""
    state = ModelState(name=name)
    key = _state.log_key(name, 1)
    while (data := _read_or_none(log, key)) is not None:
        tracker.apply(state, _state.decode(data, key), key, _state.entry_sha256(data))
        key = _state.log_key(name, state.seq + 1)
    if state.seq == 0:
        raise ModelNotFoundError(log.not_found_message(name))
    return state


def signatures(log: Log, name: str) -> list[EntrySignature]:
    """Each entry of ``name``: signed or not, by which key id (see EntrySignature)."""
    keyring = None if log.guard is None else log.guard.keyring
    tracker = Tracker(keyring, start=0, lenient=True, record=True)
    _replay(log, name, tracker)
    out = []
    for seq, kid in sorted((tracker.kids or {}).items()):
        if keyring is None:
            status = "unsigned" if kid is None else "unverified"
        elif kid is not None:
            status = "signed"
        else:
            status = "attested" if seq in tracker.attested else "unsigned"
        out.append(EntrySignature(seq, kid, status))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class AttestEvent:
    """An attestation: entries ``1..attests`` hash (chained) to ``chain_sha256``."""

    action: ClassVar[str] = ATTEST
    attests: int
    chain_sha256: str

    def payload(self) -> Payload:
        return cast(
            "Payload",
            {
                "action": ATTEST,
                "version": None,
                "attests": self.attests,
                "chain_sha256": self.chain_sha256,
            },
        )


def attest(log: Log, name: str, verify: Callable[[Log], VerifyReport]) -> Event:
    """Append one signed entry vouching for the whole history of ``name`` before it.

    Replays the model from entry 1 (a present but invalid signature refuses), runs
    ``verify`` (refusing on any damage to this model), then commits the attestation
    only if the history is still the one replayed, and writes a signed snapshot at it.
    """
    from modelversions._commit import Log as _Log

    check_name(name)
    guard = log.guard
    if guard is None or guard.keyring is None or guard.keyring.signing_id is None:
        raise InvalidInputError(f"attest needs a signing key: pass signing_key= or set {ENV_KEY}")
    relaxed = _Log(log.backend, user=log.user, max_retries=log.max_retries, guard=guard.relaxed())
    tracker = relaxed.guard.tracker(0)  # type: ignore[union-attr]
    seen = _replay(relaxed, name, tracker)
    assert tracker.chain is not None
    chain = tracker.chain.hexdigest()
    report = verify(relaxed)
    damage = [p for p in report.problems if p.name in (name, None) and not p.harmless]
    if damage:
        raise IntegrityError(
            f"refusing to attest {name!r}: verify found damage: "
            + "; ".join(str(p) for p in damage)
        )

    def build(state: ModelState) -> AttestEvent:
        if state.seq != seen.seq or state.head_sha256 != seen.head_sha256:
            raise ConcurrentUpdateError(
                f"the history of {name!r} changed while it was being attested "
                f"(entry {state.seq}, was {seen.seq}); nothing was attested: run attest again"
            )
        return AttestEvent(attests=seen.seq, chain_sha256=chain)

    _event, state = relaxed.commit(name, build)
    relaxed._write_snapshot(state, keep=1)
    with log.lock:  # the next read of this registry starts over, from the new snapshot
        log.states.pop(name, None)
    return log.history(name, state.seq)[-1]
