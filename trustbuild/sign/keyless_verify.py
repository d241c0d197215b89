"""The one keyless verification engine (image signatures, Sigstore bundles, attestations).

A keyless signature is trusted when, offline, against :class:`~trustbuild.sign.trust.TrustRoots`:

- a signing time is established by a Rekor SignedEntryTimestamp (SET) and/or an RFC 3161
  timestamp from a trusted timestamp authority;
- the Fulcio certificate chains to a trusted CA at every such time and meets the
  :class:`~trustbuild.sign.trust.KeylessPolicy` (identity, OIDC issuer);
- its embedded SCT verifies with a CT log key of the trusted root (required whenever the trusted
  root lists CT logs, as cosign does without ``--insecure-ignore-sct``);
- every transparency-log entry logs this very signature (``body_check``), and its SET, Merkle
  inclusion proof and signed checkpoint verify (whichever the entry carries; one of SET or proof
  is required).

SCT, inclusion-proof, checkpoint and RFC 3161 checks are sigstore-python's own code
(``sigstore._internal.sct``, ``merkle``, ``rekor.checkpoint``, ``Verifier`` with rfc3161-client).
The caller checks the signature itself with the certificate's key.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from trustbuild._internal.b64 import proto_b64decode
from trustbuild.errors import VerificationError
from trustbuild.sign.keys import VerifyingKey
from trustbuild.sign.rekor import CosignBundle, check_dsse_body, verify_set
from trustbuild.sign.trust import KeylessPolicy, TrustRoots, verify_chain

__all__ = ["KeylessEvidence", "KeylessVerified", "TlogEntry", "verify_keyless",
           "tlog_entries_from_bundle", "timestamps_from_bundle", "certificates_from_bundle",
           "dsse_body_check"]

_MAX_ENTRIES = 8
_MAX_TIMESTAMPS = 32  # sigstore-go's and sigstore-python's limit
_MAX_CHAIN = 6


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{what} is not a base64 string")
    try:
        return proto_b64decode(value)
    except ValueError as exc:
        raise VerificationError(f"{what} is not valid base64: {exc}") from None


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise VerificationError(f"log entry {what} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise VerificationError(f"log entry {what} is not an integer") from None


def _obj(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise VerificationError(f"{what} is not a JSON object")
    return value


@dataclass(frozen=True)
class TlogEntry:
    """One Rekor entry in the protobuf-specs JSON form (``verificationMaterial.tlogEntries[]``)."""

    log_index: int
    log_id: bytes
    body: bytes  # the decoded canonicalized body
    body_b64: str
    integrated_time: int | None
    set_b64: str | None
    raw: dict[str, object]

    @property
    def has_proof(self) -> bool:
        """True when the entry carries an inclusion proof."""
        return isinstance(self.raw.get("inclusionProof"), dict)

    @classmethod
    def from_json(cls, obj: object) -> TlogEntry:
        """Shape-check one ``tlogEntries[]`` object; VerificationError naming the defect."""
        e = _obj(obj, "log entry")
        body_b64 = e.get("canonicalizedBody")
        body = _b64(body_b64, "log entry canonicalizedBody")
        assert isinstance(body_b64, str)
        log_id = _b64(_obj(e.get("logId"), "log entry logId").get("keyId"), "log entry logId")
        itime = e.get("integratedTime")
        promise = e.get("inclusionPromise")
        set_b64 = None
        if promise is not None:
            sv = _obj(promise, "log entry inclusionPromise").get("signedEntryTimestamp")
            if not isinstance(sv, str):
                raise VerificationError("log entry inclusionPromise has no signedEntryTimestamp")
            set_b64 = sv
        return cls(_int(e.get("logIndex"), "logIndex"), log_id, body, body_b64,
                   None if itime in (None, "", "0", 0) else _int(itime, "integratedTime"),
                   set_b64, e)

    @classmethod
    def from_cosign_annotation(cls, annotation: str) -> TlogEntry:
        """cosign's ``dev.sigstore.cosign/bundle`` annotation (a Rekor SET, no proof)."""
        b = CosignBundle.parse(annotation)
        try:
            raw_id = bytes.fromhex(b.log_id)
        except ValueError:
            raise VerificationError("Rekor bundle: logID is not hex") from None
        return cls(b.log_index, raw_id, _b64(b.body, "Rekor bundle Payload.body"), b.body,
                   b.integrated_time, b.set_b64, {"canonicalizedBody": b.body})


@dataclass(frozen=True)
class KeylessEvidence:
    """What a keyless signature carries besides the signature check itself."""

    certificate: x509.Certificate
    chain: list[x509.Certificate]  # untrusted intermediates shipped with the signature
    signature: bytes  # what RFC 3161 timestamps are over
    entries: list[TlogEntry]
    timestamps: list[bytes] = field(default_factory=list)  # DER TimeStampResponses


@dataclass(frozen=True)
class KeylessVerified:
    """A verified keyless signature: who signed, when, and which checks ran."""

    signer: str
    signed_at: _dt.datetime
    checks: tuple[str, ...]
    key: VerifyingKey


def _verify_proof(entry: TlogEntry, trust: TrustRoots) -> None:
    """Merkle inclusion proof and signed checkpoint, with sigstore-python's code."""
    from sigstore._internal.merkle import verify_merkle_inclusion
    from sigstore._internal.rekor.checkpoint import verify_checkpoint
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.models import TransparencyLogEntry
    from sigstore_models.rekor.v1 import TransparencyLogEntry as RawEntry

    proof = _obj(entry.raw["inclusionProof"], "log entry inclusionProof")
    if not isinstance(proof.get("checkpoint"), dict):
        raise VerificationError("log entry inclusion proof has no checkpoint")
    raw = dict(entry.raw)
    raw.setdefault("kindVersion", {"kind": "unknown", "version": "0.0.1"})
    try:
        sig_entry = TransparencyLogEntry(RawEntry.from_dict(raw))
    except Exception as exc:  # pydantic / sigstore shape errors
        raise VerificationError(f"log entry is malformed ({_one_line(exc)})") from None
    try:
        verify_merkle_inclusion(sig_entry)
    except (SigstoreVerificationError, ValueError) as exc:
        raise VerificationError(f"Rekor inclusion proof does not verify: {_one_line(exc)}") \
            from None
    try:
        keyring = trust.sigstore_root().rekor_keyring(KeyringPurpose.VERIFY)
        verify_checkpoint(keyring, sig_entry)
    except (SigstoreVerificationError, ValueError) as exc:
        raise VerificationError(f"Rekor checkpoint does not verify: {_one_line(exc)}") from None
    except Exception as exc:  # sigstore's MetadataError: no Rekor key in the root
        raise VerificationError(f"Rekor checkpoint cannot be checked: {_one_line(exc)}") \
            from None


def _verify_timestamps(ev: KeylessEvidence, trust: TrustRoots) -> list[_dt.datetime]:
    """Times from the RFC 3161 timestamps that verify with a trusted TSA (sigstore-python's
    check). As in sigstore-python and sigstore-go, one that does not verify is not counted:
    it adds no signing time, so a signature whose only time source it was is refused."""
    if not ev.timestamps:
        return []
    if len(ev.timestamps) > _MAX_TIMESTAMPS:
        raise VerificationError(f"{len(ev.timestamps)} RFC 3161 timestamps (more than "
                                f"{_MAX_TIMESTAMPS})")
    if len(set(ev.timestamps)) != len(ev.timestamps):
        raise VerificationError("duplicate RFC 3161 timestamp")
    if not trust.has_timestamp_authorities:
        raise VerificationError(f"RFC 3161 timestamp present but {trust.source} lists no "
                                "timestamp authority to check it")
    from rfc3161_client import decode_timestamp_response
    from sigstore.verify import Verifier

    verifier = Verifier(trusted_root=trust.sigstore_root())
    times: list[_dt.datetime] = []
    for der in ev.timestamps:
        try:
            tsr = decode_timestamp_response(der)
        except ValueError:
            raise VerificationError("RFC 3161 timestamp is not a valid TimeStampResponse") \
                from None
        result = verifier._verify_signed_timestamp(tsr, ev.signature)
        if result is not None:
            times.append(result.time.astimezone(_dt.UTC))
    return times


def verify_keyless(ev: KeylessEvidence, policy: KeylessPolicy, trust: TrustRoots, *,
                   body_check: Callable[[bytes], None]) -> KeylessVerified:
    """Check everything but the signature itself (see the module docstring).

    ``body_check(body)`` raises VerificationError unless a log entry's decoded body records
    this signature. Raises VerificationError with one line naming the failed check.
    """
    if not ev.entries:
        raise VerificationError("keyless signature has no transparency log entry")
    if len(ev.entries) > _MAX_ENTRIES:
        raise VerificationError(f"{len(ev.entries)} transparency log entries (more than "
                                f"{_MAX_ENTRIES})")
    checks: list[str] = []
    times: list[_dt.datetime] = []
    for entry in ev.entries:
        if entry.set_b64 is None and not entry.has_proof:
            raise VerificationError("log entry has neither a SignedEntryTimestamp nor an "
                                    "inclusion proof")
        body_check(entry.body)
        if entry.set_b64 is not None:
            if entry.integrated_time is None:
                raise VerificationError("log entry has a SignedEntryTimestamp but no "
                                        "integratedTime")
            verify_set(trust.rekor_keys, body=entry.body_b64,
                       integrated_time=entry.integrated_time, log_index=entry.log_index,
                       log_id=entry.log_id.hex(), set_b64=entry.set_b64)
            times.append(_dt.datetime.fromtimestamp(entry.integrated_time, _dt.UTC))
            checks.append("Rekor SET")
        if entry.has_proof:
            _verify_proof(entry, trust)
            checks += ["inclusion proof", "checkpoint"]
    tsa_times = _verify_timestamps(ev, trust)
    if tsa_times:
        checks.append(f"RFC 3161 timestamp ({len(tsa_times)} of {len(ev.timestamps)})")
    times += tsa_times
    if not times:
        raise VerificationError("no verified signing time (no Rekor SignedEntryTimestamp, and "
                                f"{len(ev.timestamps)} RFC 3161 timestamp(s) verified by no "
                                "trusted timestamp authority)")
    path: list[x509.Certificate] = []
    for t in times:
        path = verify_chain(ev.certificate, ev.chain + trust.intermediates(), trust.roots(), t)
    checks.append("certificate chain")
    if trust.has_ct_logs:
        _verify_sct(ev.certificate, path, trust)
        checks.append("SCT")
    signer = policy.check(ev.certificate)
    key = VerifyingKey(ev.certificate.public_key())  # type: ignore[arg-type]
    return KeylessVerified(signer, min(times), tuple(dict.fromkeys(checks)), key)


def _verify_sct(cert: x509.Certificate, path: list[x509.Certificate], trust: TrustRoots) -> None:
    from sigstore._internal.sct import verify_sct
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.errors import VerificationError as SigstoreVerificationError

    try:
        verify_sct(cert, path, trust.sigstore_root().ct_keyring(KeyringPurpose.VERIFY))
    except SigstoreVerificationError as exc:
        raise VerificationError(f"certificate SCT does not verify: {_one_line(exc)}") from None
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise VerificationError(f"certificate SCT is missing or malformed: {_one_line(exc)}") \
            from None


def certificates_from_bundle(vm: dict[str, object]) -> list[x509.Certificate]:
    """The leaf (first) and shipped intermediates of a bundle's verification material."""
    ders: list[bytes] = []
    cert = vm.get("certificate")
    chain = vm.get("x509CertificateChain")
    if isinstance(cert, dict):
        ders = [_b64(cert.get("rawBytes"), "bundle certificate.rawBytes")]
    elif isinstance(chain, dict) and isinstance(chain.get("certificates"), list):
        certs = chain["certificates"]
        assert isinstance(certs, list)
        ders = [_b64(c.get("rawBytes") if isinstance(c, dict) else None,
                     "bundle x509CertificateChain") for c in certs[:_MAX_CHAIN]]
    if not ders:
        raise VerificationError("bundle has no certificate (a key-based bundle needs --key)")
    try:
        return [x509.load_der_x509_certificate(d) for d in ders]
    except ValueError:
        raise VerificationError("bundle certificate is not valid DER") from None


def tlog_entries_from_bundle(vm: dict[str, object]) -> list[TlogEntry]:
    """``verificationMaterial.tlogEntries`` parsed (VerificationError if malformed)."""
    entries = vm.get("tlogEntries")
    if not isinstance(entries, list):
        return []
    return [TlogEntry.from_json(e) for e in entries[:_MAX_ENTRIES + 1]]


def timestamps_from_bundle(vm: dict[str, object]) -> list[bytes]:
    """The DER RFC 3161 responses of ``timestampVerificationData``."""
    tvd = vm.get("timestampVerificationData")
    if not isinstance(tvd, dict) or not isinstance(tvd.get("rfc3161Timestamps"), list):
        return []
    out = []
    for ts in tvd["rfc3161Timestamps"][:_MAX_TIMESTAMPS + 1]:
        out.append(_b64(ts.get("signedTimestamp") if isinstance(ts, dict) else None,
                        "rfc3161Timestamps[].signedTimestamp"))
    return out


def dsse_body_check(payload: bytes, signature_b64: str, cert: x509.Certificate
                    ) -> Callable[[bytes], None]:
    """A ``body_check`` for a DSSE signature: a ``dsse`` or ``intoto`` entry logging it."""
    pem = cert.public_bytes(serialization.Encoding.PEM)

    def check(body: bytes) -> None:
        check_dsse_body(body, payload=payload, signature_b64=signature_b64, signer_pem=pem)
    return check

