"""How far ahead of our clock a verified time may be, for every verification path.

Rules enforced:
- One tolerance (:data:`CLOCK_SKEW`) for transparency-log integrated times and RFC 3161
  times, on the cosign and the Sigstore bundle paths alike, measured from the ``now`` the
  caller passes (the admission request's clock), never from a second reading of the wall clock.
- A verified time after ``now + CLOCK_SKEW`` is refused: a log or TSA does not vouch for the
  future, and such a time would stretch a short-lived certificate's validity.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from controller.verify.errors import VerificationError

__all__ = ["CLOCK_SKEW", "latest_acceptable", "refuse_future"]

# A log's or TSA's clock and ours may disagree slightly; a time further ahead is refused.
CLOCK_SKEW = timedelta(minutes=5)


def latest_acceptable(now: datetime) -> datetime:
    """The latest verified time accepted when our clock reads ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now + CLOCK_SKEW


def refuse_future(when: datetime, now: datetime, what: str) -> None:
    """:class:`VerificationError` when ``when`` (``what``) is after ``now + CLOCK_SKEW``."""
    if when > latest_acceptable(now):
        raise VerificationError(
            f"{what} {when.isoformat()} is in the future (our clock reads {now.isoformat()})"
        )
