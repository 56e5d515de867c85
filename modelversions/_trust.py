"""The trust half of :class:`~modelversions.ModelRegistry`: heads, attestation, signatures.

Thin methods over :mod:`modelversions.signing` (keys, signatures, the chain) and the
commit loop; this room decides nothing about what is trusted and never reads an
artifact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelversions._names import check_name

if TYPE_CHECKING:  # signing and fsck are imported by the methods that use them
    from modelversions import signing
    from modelversions._commit import Log
    from modelversions.records import Event

__all__ = ["Trust"]


class Trust:
    """``head``, ``attest`` and ``signatures`` of a registry's models."""

    _log: Log

    def head(self, name: str) -> tuple[int, str]:
        """The newest entry of ``name``'s history: ``(seq, sha256 of its bytes)``.

        Pin it (``expect_heads=``, ``verify(expect=)``) to refuse a history that was
        truncated or rewritten behind it, which signatures alone cannot see.

        >>> from modelversions import ModelRegistry
        >>> reg = ModelRegistry("memory://"); _ = reg.save("m", 1)
        >>> seq, sha = reg.head("m"); seq, len(sha)
        (1, 64)
        """
        state = self._log.existing(name)
        with self._log.lock:
            return state.seq, str(state.head_sha256)

    def attest(self, name: str) -> Event:
        """Vouch, with the signing key, for the whole history of ``name`` as stored now.

        Runs :meth:`verify` first and refuses (IntegrityError) on any damage to the
        model; then appends one signed ``attest`` entry covering the hash of every
        entry before it. Readers with the key then accept those earlier entries; an
        unsigned entry added later is still refused.

        Raises:
            InvalidInputError: no signing key.
            IntegrityError, SignatureError: damage, or an invalid signature.
        """
        from modelversions import signing
        from modelversions.fsck import Fsck

        return signing.attest(
            self._log, name, lambda log: Fsck(log).verify(repair=False, min_age=3600.0)
        )

    def signatures(self, name: str) -> list[signing.EntrySignature]:
        """Each history entry of ``name``: whether it is signed, and by which key id.

        >>> from modelversions import ModelRegistry
        >>> reg = ModelRegistry("memory://", signing_key="k" * 32); _ = reg.save("m", 1)
        >>> [(s.seq, s.status) for s in reg.signatures("m")]
        [(1, 'signed')]
        """
        from modelversions import signing

        check_name(name)
        return signing.signatures(self._log, name)
