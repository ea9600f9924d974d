"""Manifest parsing refuses hostile registry answers with a clear, classified error."""

from __future__ import annotations

import pytest

from controller.oci.errors import RegistryError
from controller.oci.manifest import parse_manifest

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"\xff\xfe\x00garbage", "not UTF-8 JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"{not json", "is not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"layers": {"a": 1}}', "must be lists"),
        (b'{"layers": [{"digest": "sha256:zz", "size": 1}]}', "descriptor digest"),
        (b'{"layers": [{"digest": "' + D.encode() + b'", "size": -1}]}', "not a count"),
    ],
)
def test_malformed_manifests_are_invalid(raw: bytes, fragment: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_manifest(raw, D, "application/vnd.oci.image.manifest.v1+json")
    assert info.value.kind == "invalid"
    assert fragment in str(info.value)


def test_index_is_recognised() -> None:
    raw = b'{"schemaVersion": 2, "manifests": [{"digest": "' + D.encode() + b'", "size": 3}]}'
    m = parse_manifest(raw, D, None)
    assert m.is_index and m.manifests[0].digest == D
