"""Reading UNVERIFIED JSON (RFC 8259) from evidence without crashing on hostile input.

Rules enforced:
- Undecodable bytes, invalid JSON, integers longer than Python's digit limit (a
  ``ValueError`` that is not a ``JSONDecodeError``) and nesting too deep for the parser (a
  ``RecursionError``) are all :class:`EvidenceFormatError` naming what was being read.
- Size limits come from the callers, which know what they are reading; ``load_json_object``
  checks the limit before parsing and that the document is an object.
"""

from __future__ import annotations

import json
from typing import Any

from controller.verify.errors import EvidenceFormatError

__all__ = ["load_json", "load_json_object"]


def load_json(raw: bytes | str, what: str) -> Any:
    """Parse ``raw`` as JSON; :class:`EvidenceFormatError` saying ``what`` is malformed."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise EvidenceFormatError(f"{what} is nested too deeply to be read") from None
    except (ValueError, UnicodeDecodeError) as exc:
        # JSONDecodeError is a ValueError; so is "integer string too long to convert".
        raise EvidenceFormatError(f"{what} is not valid JSON: {exc}") from exc


def load_json_object(raw: bytes, what: str, *, max_bytes: int) -> dict[str, Any]:
    """``raw`` parsed as a JSON object of at most ``max_bytes``; EvidenceFormatError if not."""
    if len(raw) > max_bytes:
        raise EvidenceFormatError(f"{what} is {len(raw)} bytes, over the {max_bytes}-byte limit")
    doc = load_json(raw, what)
    if not isinstance(doc, dict):
        raise EvidenceFormatError(f"{what} is not a JSON object")
    return doc
