"""status's figures towards a target (:class:`SendProgress`), without the index's imports.

Built from the plan's instances per final state: read from the index (:func:`pacscopy.send.queue.progress`)
or from the figures a running send published (:mod:`pacscopy.send.status_cache`), which ``status`` reads
without importing DuckDB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pacscopy.send.status_counts import Counts


class Figure(Protocol):
    """The instances in one final state (a :class:`pacscopy.send.status_counts.StateCount`, or as published)."""

    @property
    def instances(self) -> int: ...

    @property
    def bytes(self) -> int: ...

    @property
    def warnings(self) -> int: ...


@dataclass
class SendProgress:
    """Progress towards a target (:func:`pacscopy.send.queue.progress`) and the latest run's rate.

    Every instance of the plan is counted once, by its final state for the target (issue 14):
    the counts from ``stored_current`` to ``excluded`` add up to ``in_plan``.
    """

    in_plan: int
    stored_current: int  # verified or stored, not yet verified; the content is the source's current one
    verified: int
    verify_problems: int  # mismatch, missing on target, disputed
    updates_pending: int
    stale: int
    deleted_in_source: int
    awaiting_decision: int
    failed: int
    not_sent: int
    excluded: int
    left_bytes: int
    warnings: int
    left_to_send: int  # not sent, failed, updates pending, stale
    run_id: int | None
    started: dt.datetime | None
    ended: dt.datetime | None
    instances: int | None
    bytes: int | None
    as_of: dt.datetime | None = None  # when the figures were last counted or kept current
    #: a full count made on a read-only connection, to keep in the index once it is closed (:func:`keep_count`)
    counted: tuple[str, str, Counts, str] | None = field(default=None, repr=False, compare=False)

    @property
    def seconds(self) -> float:
        """The latest run's duration (0 if there is none or it sent nothing)."""
        if self.started is None or self.ended is None:
            return 0.0
        return max((self.ended - self.started).total_seconds(), 1e-3)

    @property
    def per_second(self) -> float:
        """Instances per second in the latest run (0 if unknown)."""
        return (self.instances or 0) / self.seconds if self.seconds and self.instances else 0.0

    @property
    def mb_per_second(self) -> float:
        return (self.bytes or 0) / 1e6 / self.seconds if self.seconds and self.instances else 0.0

    def finish(self, now: dt.datetime | None = None) -> dt.datetime | None:
        """When the rest would be sent at the latest run's rate, sending around the clock."""
        if not self.left_to_send or not self.per_second:
            return None
        return (now or dt.datetime.now()) + dt.timedelta(seconds=self.left_to_send / self.per_second)


def progress_from(counts: Mapping[str, Figure], last: tuple[Any, ...] | None, as_of: dt.datetime | None = None) -> SendProgress:
    """status's figures from the plan's instances per final state (:mod:`pacscopy.send.status_counts`)."""
    def n(*states: str) -> int:
        return sum(counts[s].instances for s in states if s in counts)

    excluded = sum(c.instances for s, c in counts.items() if s.startswith("excluded_") or s == "unaccounted")
    left = ("not_sent", "failed", "update_pending", "stale_on_target")
    stored = ("verified", "stored_unverified")
    run_id, started, ended, instances, nbytes = last if last else (None, None, None, None, None)
    return SendProgress(
        in_plan=sum(c.instances for c in counts.values()), stored_current=n(*stored), verified=n("verified"),
        verify_problems=n("mismatch", "missing_on_target", "disputed"), updates_pending=n("update_pending"),
        stale=n("stale_on_target"), deleted_in_source=n("deleted_in_source"),
        awaiting_decision=n("awaiting_decision"), failed=n("failed"), not_sent=n("not_sent"), excluded=excluded,
        left_bytes=sum(counts[s].bytes for s in left if s in counts),
        warnings=sum(counts[s].warnings for s in stored if s in counts),
        left_to_send=n(*left), run_id=run_id, started=started, ended=ended, instances=instances, bytes=nbytes,
        as_of=as_of)
