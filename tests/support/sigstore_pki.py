"""A private Sigstore instance for tests: Fulcio-like CA, CT log, Rekor log and trusted root.

Everything is generated in memory with ``cryptography``; nothing touches the network. It mirrors
what the public-good instance produces closely enough that the verifier under test cannot tell
the difference:

- a P-384 root CA and intermediate issue short-lived code-signing leaves with an empty subject,
  a critical SAN (URI or email), the OIDC issuer extensions 1.3.6.1.4.1.57264.1.1 (raw string)
  and 1.3.6.1.4.1.57264.1.8 (DER UTF8String), and an embedded precertificate SCT signed by the
  test CT log (RFC 6962 §3.2, as Fulcio does);
- a Rekor log key that signs SignedEntryTimestamps over hashedrekord / intoto / dsse bodies in
  the exact shape of cosign's ``dev.sigstore.cosign/bundle`` annotation;
- an RFC 3161 timestamp authority whose DER ``TimeStampResp`` tokens are built by hand (no
  extra dependency) and verify with ``rfc3161-client``;
- ``trusted_root_json()`` in the Sigstore protobuf JSON form (``trustedroot+json;version=0.1``).

Knobs for negative tests: leaf validity window, OIDC issuer, SCT on/off, SET signing key and
log id, and the Rekor body (so an entry can name another signature).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

__all__ = [
    "FulcioLeaf",
    "LogKeyPair",
    "TestSigstore",
    "TimestampAuthority",
    "der_octet_string",
    "der_utf8_string",
    "dsse_body",
    "hashedrekord_body",
    "intoto_body",
    "intoto_v001_body",
    "spki_der",
]

OID_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OID_SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")

DEFAULT_ISSUER = "https://oidc.test.example"
DEFAULT_SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def der_octet_string(data: bytes) -> bytes:
    """DER OCTET STRING."""
    return b"\x04" + _der_length(len(data)) + data


def der_utf8_string(text: str) -> bytes:
    """DER UTF8String."""
    data = text.encode("utf-8")
    return b"\x0c" + _der_length(len(data)) + data


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _set_of(*items: bytes) -> bytes:
    return _tlv(0x31, b"".join(sorted(items)))  # DER orders SET OF by encoding


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _explicit(number: int, content: bytes) -> bytes:
    return _tlv(0xA0 | number, content)


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    """DER SubjectPublicKeyInfo."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class LogKeyPair:
    """A log (Rekor or CT) signing key and its log id (sha256 of the DER public key)."""

    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_der(self) -> bytes:
        return spki_der(self.private_key.public_key())

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(self.public_der).digest()

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    @classmethod
    def generate(cls) -> LogKeyPair:
        return cls(ec.generate_private_key(ec.SECP256R1()))


@dataclass(frozen=True)
class FulcioLeaf:
    """A short-lived signing certificate and its private key."""

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # intermediate, root

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def hashedrekord_body(signature: bytes, signer_pem: bytes, payload_sha256_hex: str) -> bytes:
    """A Rekor ``hashedrekord`` v0.0.1 entry body, as Rekor stores it."""
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": payload_sha256_hex}},
            "signature": {"content": _b64(signature), "publicKey": {"content": _b64(signer_pem)}},
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def dsse_body(
    envelope_json: bytes, payload: bytes, signatures: list[bytes], signer_pem: bytes
) -> bytes:
    """A Rekor ``dsse`` v0.0.1 entry body (what current cosign uploads for attestations)."""
    body = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(envelope_json).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [
                {"signature": _b64(sig), "verifier": _b64(signer_pem)} for sig in signatures
            ],
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def intoto_body(
    envelope_json: bytes,
    payload_type: str,
    payload: bytes,
    signatures: list[bytes],
    signer_pem: bytes,
) -> bytes:
    """A Rekor ``intoto`` v0.0.2 entry body (older cosign). Rekor double-encodes ``sig``."""
    body = {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": payload_type,
                    "signatures": [
                        {"publicKey": _b64(signer_pem), "sig": _b64(_b64(sig).encode())}
                        for sig in signatures
                    ],
                },
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(envelope_json).hexdigest()},
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
            }
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


_SHA256 = "2.16.840.1.101.3.4.2.1"
_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
_SIGNED_DATA = "1.2.840.113549.1.7.2"
_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
_TSA_POLICY = "1.3.6.1.4.1.57264.2"


class TimestampAuthority:
    """An RFC 3161 TSA: a root and a timestamping leaf that signs TimeStampResp tokens.

    The response is assembled by hand in DER (RFC 3161 §2.4.2 over CMS SignedData, RFC 5652,
    with the ESS signingCertificateV2 attribute, RFC 5035), since ``cryptography`` cannot
    build one.
    """

    def __init__(self, name: str, now: datetime) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.key = ec.generate_private_key(ec.SECP256R1())
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}-tsa-root")])
        leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}-tsa")])
        start, end = now - timedelta(days=365), now + timedelta(days=365)
        root_pub = self.root_key.public_key()
        self.root_cert = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_pub), critical=False)
            .sign(self.root_key, hashes.SHA256())
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(leaf_name)
            .issuer_name(root_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_pub), critical=False
            )
            .sign(self.root_key, hashes.SHA256())
        )
        self._serial = 1

    def timestamp(self, message: bytes, when: datetime, *, embed_cert: bool = True) -> bytes:
        """A DER TimeStampResp (status granted) over sha256(``message``) at ``when``."""
        self._serial += 1
        sha256_alg = _seq(_oid(_SHA256))
        tst_info = _seq(
            _int(1),
            _oid(_TSA_POLICY),
            _seq(sha256_alg, der_octet_string(hashlib.sha256(message).digest())),
            _int(self._serial),
            _tlv(0x18, when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode()),
        )
        cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        attributes = [
            _seq(_oid(_CONTENT_TYPE), _set_of(_oid(_TST_INFO))),
            _seq(
                _oid(_MESSAGE_DIGEST), _set_of(der_octet_string(hashlib.sha256(tst_info).digest()))
            ),
            _seq(
                _oid(_SIGNING_CERTIFICATE_V2),
                _set_of(_seq(_seq(_seq(der_octet_string(hashlib.sha256(cert_der).digest()))))),
            ),
        ]
        signed_attrs = _set_of(*attributes)
        signature = self.key.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
        signer_info = _seq(
            _int(1),
            _seq(self.cert.issuer.public_bytes(), _int(self.cert.serial_number)),
            sha256_alg,
            b"\xa0" + signed_attrs[1:],  # [0] IMPLICIT: same bytes, context tag
            _seq(_oid(_ECDSA_SHA256)),
            der_octet_string(signature),
        )
        signed_data = _seq(
            _int(3),
            _set_of(sha256_alg),
            _seq(_oid(_TST_INFO), _explicit(0, der_octet_string(tst_info))),
            *([_tlv(0xA0, cert_der)] if embed_cert else []),
            _set_of(signer_info),
        )
        token = _seq(_oid(_SIGNED_DATA), _explicit(0, signed_data))
        return _seq(_seq(_int(0)), token)


@dataclass
class TestSigstore:
    """One private Sigstore instance. ``now`` anchors every validity window."""

    __test__ = False  # not a pytest test class despite the name

    name: str = "test-sigstore"
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    rekor: LogKeyPair = field(default_factory=LogKeyPair.generate)
    ct: LogKeyPair = field(default_factory=LogKeyPair.generate)
    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    intermediate_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    with_tsa: bool = True
    tsa: TimestampAuthority | None = field(init=False, default=None)
    _next_log_index: int = 1000

    def __post_init__(self) -> None:
        start = self.now - timedelta(days=365)
        end = self.now + timedelta(days=365)
        self.tsa = TimestampAuthority(self.name, self.now) if self.with_tsa else None
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{self.name}.dev"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name}-root"),
            ]
        )
        inter_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{self.name}.dev"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name}-intermediate"),
            ]
        )
        root_pub = self.root_key.public_key()
        inter_pub = self.intermediate_key.public_key()
        self.root_cert = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_pub), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_pub), critical=False
            )
            .sign(self.root_key, hashes.SHA384())
        )
        self.intermediate_cert = (
            x509.CertificateBuilder()
            .subject_name(inter_name)
            .issuer_name(root_name)
            .public_key(inter_pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_pub), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_pub), critical=False
            )
            .sign(self.root_key, hashes.SHA384())
        )

    # -- Fulcio ---------------------------------------------------------------------------------

    def issue(
        self,
        *,
        subject: str = DEFAULT_SUBJECT,
        issuer: str = DEFAULT_ISSUER,
        email: bool = False,
        not_before: datetime | None = None,
        lifetime: timedelta = timedelta(minutes=10),
        with_sct: bool = True,
        issuer_v1_only: bool = False,
    ) -> FulcioLeaf:
        """Issue a Fulcio-style leaf for ``subject`` (URI SAN, or email SAN with ``email``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before if not_before is not None else self.now - timedelta(minutes=5)
        san: x509.GeneralName = (
            x509.RFC822Name(subject) if email else x509.UniformResourceIdentifier(subject)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.intermediate_key.public_key()
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V1, issuer.encode()), False)
        )
        if not issuer_v1_only:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OID_ISSUER_V2, der_utf8_string(issuer)), False
            )
        if with_sct:
            # The precertificate is the same TBS without the SCT list; the SCT signs that TBS.
            precert = builder.sign(self.intermediate_key, hashes.SHA384())
            sct_list = self._sct_list(precert.tbs_certificate_bytes, start)
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OID_SCT_LIST, der_octet_string(sct_list)), False
            )
        cert = builder.sign(self.intermediate_key, hashes.SHA384())
        if with_sct:
            assert cert.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        return FulcioLeaf(key, cert, (self.intermediate_cert, self.root_cert))

    def _sct_list(self, precert_tbs: bytes, when: datetime) -> bytes:
        millis = int(when.timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(spki_der(self.intermediate_key.public_key())).digest()
        signed = (
            struct.pack(">BBQH", 0, 0, millis, 1)  # v1, certificate_timestamp, time, precert
            + issuer_key_hash
            + len(precert_tbs).to_bytes(3, "big")
            + precert_tbs
            + b"\x00\x00"  # no extensions
        )
        signature = self.ct.sign(signed)
        sct = (
            b"\x00"
            + self.ct.log_id
            + struct.pack(">QH", millis, 0)
            + b"\x04\x03"  # sha256, ecdsa
            + struct.pack(">H", len(signature))
            + signature
        )
        entry = struct.pack(">H", len(sct)) + sct
        return struct.pack(">H", len(entry)) + entry

    # -- Rekor ----------------------------------------------------------------------------------

    def rekor_set(
        self,
        body: bytes,
        *,
        integrated_time: datetime | None = None,
        signing_log: LogKeyPair | None = None,
        log_id: bytes | None = None,
    ) -> bytes:
        """cosign's ``dev.sigstore.cosign/bundle`` annotation: a SET over ``body``.

        ``signing_log`` signs instead of this instance's Rekor (a forged SET); ``log_id``
        overrides the log id written in the payload.
        """
        signer = signing_log or self.rekor
        when = integrated_time if integrated_time is not None else self.now - timedelta(minutes=4)
        self._next_log_index += 1
        payload = {
            "body": _b64(body),
            "integratedTime": int(when.timestamp()),
            "logID": (log_id if log_id is not None else signer.log_id).hex(),
            "logIndex": self._next_log_index,
        }
        canonical = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return json.dumps(
            {"SignedEntryTimestamp": _b64(signer.sign(canonical)), "Payload": payload}
        ).encode()

    # -- trusted root ---------------------------------------------------------------------------

    def trusted_root_json(self) -> bytes:
        """This instance as a Sigstore ``trusted_root.json``."""
        start = _rfc3339(self.now - timedelta(days=365))

        def log(pair: LogKeyPair, url: str) -> dict[str, object]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(pair.public_der),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": _b64(pair.log_id)},
            }

        doc = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor, f"https://rekor.{self.name}.example")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": f"{self.name}.dev", "commonName": self.name},
                    "uri": f"https://fulcio.{self.name}.example",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                            for c in (self.intermediate_cert, self.root_cert)
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [log(self.ct, f"https://ctfe.{self.name}.example")],
            "timestampAuthorities": [],
        }
        if self.tsa is not None:
            doc["timestampAuthorities"] = [
                {
                    "subject": {"organization": f"{self.name}.dev", "commonName": "tsa"},
                    "uri": f"https://tsa.{self.name}.example",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                            for c in (self.tsa.cert, self.tsa.root_cert)
                        ]
                    },
                    "validFor": {"start": start},
                }
            ]
        return json.dumps(doc, indent=1).encode()


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def intoto_v001_body(envelope_json: bytes, payload: bytes, signer_pem: bytes) -> bytes:
    """A Rekor ``intoto`` v0.0.1 entry body as Rekor stores it: what ``cosign attest`` logs
    with ``--rekor-entry-type intoto`` (cosign 2.2+) and by default before cosign 2.2
    (cosign ``pkg/cosign/tlog.go`` intotoEntry pins ``intoto_v001.APIVERSION``; rekor
    ``pkg/types/intoto/v0.0.1/entry.go`` Canonicalize keeps only ``publicKey`` and the
    envelope and payload hashes)."""
    body = {
        "apiVersion": "0.0.1",
        "kind": "intoto",
        "spec": {
            "content": {
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(envelope_json).hexdigest()},
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
            },
            "publicKey": _b64(signer_pem),
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()
