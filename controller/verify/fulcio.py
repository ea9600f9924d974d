"""Fulcio signing certificates: chain, validity at the signing time, SCTs, and OIDC identity.

Implements the Sigstore "certificate verification" steps of the client spec
(https://github.com/sigstore/architecture-docs, *Verification*) and RFC 6962 §3.2 for SCTs.

Rules enforced:
- Certificates are parsed under size limits; malformed PEM/DER is ``EvidenceFormatError``.
- The chain is built to a Fulcio CA of the trust root whose ``validFor`` window contains the
  signing time; intermediates may come from the evidence but only the trust root anchors.
- Validity is checked at the VERIFIED signing time (transparency-log integrated time or RFC 3161
  time), never at "now": Fulcio certificates live ten minutes.
- The leaf must allow digital signatures and carry the code-signing EKU.
- At least one embedded SCT must verify with a CT log key from the trust root that was valid
  when the SCT was issued.
- Identity = SAN (URI or email) and the OIDC issuer extension (1.3.6.1.4.1.57264.1.8, falling
  back to the deprecated 1.3.6.1.4.1.57264.1.1).
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as X509VerificationError

from controller.verify.authority import KeylessAuthority
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.facts import SignerIdentity
from controller.verify.keys import PublicKey, ensure_supported
from controller.verify.trustroot import TrustMaterial, verify_with_log_key

__all__ = [
    "MAX_CERT_PEM_BYTES",
    "MAX_CHAIN_PEM_BYTES",
    "OID_ISSUER_V1",
    "OID_ISSUER_V2",
    "certificate_extensions",
    "certificate_identity",
    "certificate_key",
    "check_identity",
    "parse_certificate",
    "parse_chain",
    "verify_certificate",
    "verify_signing_certificate",
]

MAX_CERT_PEM_BYTES = 64 * 1024
MAX_CHAIN_PEM_BYTES = 256 * 1024
MAX_CHAIN_CERTS = 10

OID_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def parse_certificate(pem_or_der: bytes) -> x509.Certificate:
    """One X.509 certificate from PEM (or DER). ``EvidenceFormatError`` when malformed."""
    if len(pem_or_der) > MAX_CERT_PEM_BYTES:
        raise EvidenceFormatError(
            f"certificate is {len(pem_or_der)} bytes, over the {MAX_CERT_PEM_BYTES} limit"
        )
    try:
        if pem_or_der.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(pem_or_der)
        return x509.load_der_x509_certificate(pem_or_der)
    except ValueError as exc:
        raise EvidenceFormatError(f"certificate is not a valid X.509 certificate: {exc}") from exc


def certificate_extensions(cert: x509.Certificate, what: str = "certificate") -> x509.Extensions:
    """``cert.extensions``; :class:`EvidenceFormatError` when one of them is malformed
    (``cryptography`` parses them all on first access and raises ``ValueError``)."""
    try:
        return cert.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise EvidenceFormatError(f"{what} has a malformed extension: {exc}") from exc


def certificate_key(cert: x509.Certificate, what: str = "certificate") -> PublicKey:
    """The certificate's public key when it is a type and size we accept;
    :class:`EvidenceFormatError` for unknown algorithms and malformed keys."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise EvidenceFormatError(f"{what} key cannot be used: {exc}") from exc
    try:
        return ensure_supported(key)
    except EvidenceFormatError as exc:
        raise EvidenceFormatError(f"{what} key cannot be used: {exc}") from exc


def parse_chain(pem: bytes) -> list[x509.Certificate]:
    """A PEM bundle of certificates (cosign's ``dev.sigstore.cosign/chain``)."""
    if len(pem) > MAX_CHAIN_PEM_BYTES:
        raise EvidenceFormatError(
            f"certificate chain is {len(pem)} bytes, over the {MAX_CHAIN_PEM_BYTES} limit"
        )
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise EvidenceFormatError(f"certificate chain is not valid PEM: {exc}") from exc
    if len(certs) > MAX_CHAIN_CERTS:
        raise EvidenceFormatError(
            f"certificate chain has {len(certs)} certificates (max {MAX_CHAIN_CERTS})"
        )
    return certs


def verify_signing_certificate(
    cert_pem: bytes, chain_pem: bytes | None, trust: TrustMaterial, at: datetime
) -> x509.Certificate:
    """Verify an UNVERIFIED Fulcio leaf (PEM) at the verified signing time ``at``.

    ``chain_pem`` supplies untrusted intermediates (roots in it are ignored as anchors).
    Returns the parsed leaf; raises ``VerificationError`` with the precise reason.
    """
    leaf = parse_certificate(cert_pem)
    untrusted = parse_chain(chain_pem) if chain_pem else []
    verify_certificate(leaf, untrusted, trust, at)
    return leaf


def verify_certificate(
    leaf: x509.Certificate,
    untrusted: list[x509.Certificate],
    trust: TrustMaterial,
    at: datetime,
) -> list[x509.Certificate]:
    """As ``verify_signing_certificate`` for an already-parsed leaf; returns the verified chain
    above the leaf (issuer first, root last)."""
    if at.tzinfo is None:
        raise ValueError("signing time must be timezone-aware")
    if at > leaf.not_valid_after_utc:
        raise VerificationError(
            f"certificate expired at {leaf.not_valid_after_utc.isoformat()} before the "
            f"signature's log time {at.isoformat()}"
        )
    if at < leaf.not_valid_before_utc:
        raise VerificationError(
            f"certificate not valid until {leaf.not_valid_before_utc.isoformat()}, after the "
            f"signature's log time {at.isoformat()}"
        )
    chain = _build_chain(leaf, untrusted, trust, at)
    _check_usage(leaf)
    _verify_scts(leaf, chain[0], trust)
    return chain


def _build_chain(
    leaf: x509.Certificate, untrusted: list[x509.Certificate], trust: TrustMaterial, at: datetime
) -> list[x509.Certificate]:
    # Fulcio certificates use the code-signing EKU, which the client-auth profile would refuse;
    # the EKU is checked separately in _check_usage. Everything else keeps webpki defaults.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    candidates = [ca for ca in trust.fulcio_authorities() if ca.window.contains(at)]
    if not candidates:
        raise VerificationError(
            f"certificate not issued by a trusted Fulcio CA: no Fulcio CA in trust root "
            f"{trust.name!r} was valid at {at.isoformat()}"
        )
    last = ""
    for ca in candidates:
        verifier = (
            PolicyBuilder()
            .store(Store(list(ca.certificates)))
            .time(at)
            .max_chain_depth(MAX_CHAIN_CERTS)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            return list(verifier.verify(leaf, untrusted).chain[1:])
        except (X509VerificationError, x509.UnsupportedGeneralNameType) as exc:
            last = str(exc)
    raise VerificationError(
        f"certificate not issued by a trusted Fulcio CA of trust root {trust.name!r} ({last})"
    )


def _check_usage(leaf: x509.Certificate) -> None:
    extensions = certificate_extensions(leaf)
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise VerificationError(f"certificate lacks a required extension: {exc}") from exc
    if not usage.digital_signature:
        raise VerificationError("certificate key usage does not allow digital signatures")
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise VerificationError("certificate lacks the code-signing extended key usage")


def _verify_scts(leaf: x509.Certificate, issuer: x509.Certificate, trust: TrustMaterial) -> None:
    try:
        scts = (
            certificate_extensions(leaf)
            .get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)
            .value
        )
    except x509.ExtensionNotFound:
        raise VerificationError("no valid SCT: the certificate embeds no SCT") from None
    except ValueError as exc:
        raise EvidenceFormatError(f"the certificate's SCT list is malformed: {exc}") from exc
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    tbs = leaf.tbs_precertificate_bytes
    reasons: list[str] = []
    for sct in scts:
        try:
            key = trust.ct_key(sct.log_id)
        except VerificationError as exc:
            reasons.append(str(exc))
            continue
        when = sct.timestamp.replace(tzinfo=UTC)
        if not key.window.contains(when):
            reasons.append(f"CT log {sct.log_id.hex()} key was not valid at {when.isoformat()}")
            continue
        # RFC 6962 §3.2 digitally-signed struct for a precert_entry (entry type 1).
        millis = int(when.timestamp() * 1000)
        signed = (
            struct.pack(">BBQH", 0, 0, millis, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + len(sct.extension_bytes).to_bytes(2, "big")
            + sct.extension_bytes
        )
        if verify_with_log_key(key.public_key, sct.signature, signed):
            return
        reasons.append(f"SCT signature from CT log {sct.log_id.hex()} does not verify")
    raise VerificationError("no valid SCT: " + "; ".join(reasons or ["empty SCT list"]))


def _der_utf8_string(raw: bytes) -> str | None:
    """Decode a DER UTF8String (tag 0x0c), or None when ``raw`` is not one."""
    if len(raw) < 2 or raw[0] != 0x0C:
        return None
    length, offset = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(raw) < 2 + count:
            return None
        length, offset = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    if len(raw) != offset + length:
        return None
    try:
        return raw[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def certificate_identity(cert: x509.Certificate) -> tuple[str, str]:
    """(subject SAN URI or email, OIDC issuer) of a Fulcio certificate.

    ``VerificationError`` when either is missing.
    """
    extensions = certificate_extensions(cert)
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise VerificationError("certificate has no subject alternative name") from None
    except (ValueError, x509.UnsupportedGeneralNameType) as exc:
        raise EvidenceFormatError(
            f"certificate subject alternative name is malformed: {exc}"
        ) from exc
    names = san.get_values_for_type(x509.UniformResourceIdentifier) or san.get_values_for_type(
        x509.RFC822Name
    )
    if not names:
        raise VerificationError("certificate has neither a URI nor an email subject")
    issuer: str | None = None
    for ext in extensions:
        if ext.oid == OID_ISSUER_V2 and isinstance(ext.value, x509.UnrecognizedExtension):
            issuer = _der_utf8_string(ext.value.value)
            if issuer is None:
                raise EvidenceFormatError(
                    "certificate OIDC issuer extension (1.8) is not a UTF8String"
                )
            break
    if issuer is None:
        for ext in extensions:
            if ext.oid == OID_ISSUER_V1 and isinstance(ext.value, x509.UnrecognizedExtension):
                try:
                    issuer = ext.value.value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise EvidenceFormatError(
                        "certificate OIDC issuer extension (1.1) is not UTF-8"
                    ) from exc
                break
    if not issuer:
        raise VerificationError("certificate carries no OIDC issuer extension")
    return names[0], issuer


def check_identity(cert: x509.Certificate, authority: KeylessAuthority) -> SignerIdentity:
    """The certificate's identity if it satisfies ``authority``; ``VerificationError`` naming
    expected and found otherwise."""
    subject, issuer = certificate_identity(cert)
    if issuer != authority.issuer:
        raise VerificationError(
            f"certificate issuer {issuer!r} does not match expected issuer {authority.issuer!r}"
            f" (authority {authority.name!r})"
        )
    if not authority.subject_matches(subject):
        raise VerificationError(
            f"certificate subject {subject!r} does not match expected {authority.describe()}"
            f" (authority {authority.name!r})"
        )
    return SignerIdentity(authority=authority.name, kind="keyless", subject=subject, issuer=issuer)
