"""What a send run is asked to do: associations, a byte rate, a daily window, a selection, retries."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pacscopy.errors import InputError


@dataclass
class Window:
    """A daily time window ``HH:MM-HH:MM`` (may wrap past midnight)."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> Window:
        try:
            a, b = text.split("-")
            start = dt.time.fromisoformat(a.strip())
            end = dt.time.fromisoformat(b.strip())
        except ValueError:
            raise InputError(f"--window {text!r} is not HH:MM-HH:MM (for example 19:00-06:30)") from None
        if start == end:
            raise InputError(f"--window {text!r} is empty: start and end are equal")
        return cls(start, end)

    def contains(self, now: dt.datetime) -> bool:
        t = now.time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_open(self, now: dt.datetime) -> dt.datetime:
        """When the window next opens (``now`` if it is open)."""
        if self.contains(now):
            return now
        candidate = dt.datetime.combine(now.date(), self.start)
        if candidate <= now:
            candidate += dt.timedelta(days=1)
        return candidate

    def __str__(self) -> str:
        return f"{self.start.strftime('%H:%M')}-{self.end.strftime('%H:%M')}"


def wait_for_window(window: Window | None, *, clock: Callable[[], dt.datetime] = dt.datetime.now,
                    sleep: Callable[[float], None] = time.sleep,
                    on_wait: Callable[[dt.datetime], None] | None = None,
                    stop: Any = None) -> float:
    """Block until ``window`` is open; return the seconds waited (by ``clock``)."""
    if window is None:
        return 0.0
    first = clock()
    now = first
    told = False
    while not window.contains(now):
        opens = window.next_open(now)
        if on_wait and not told:
            on_wait(opens)
            told = True
        if stop is not None and stop.is_set():
            break
        sleep(min(60.0, max(0.5, (opens - now).total_seconds())))
        now = clock()
    return (now - first).total_seconds()


def parse_rate(text: str | None) -> int | None:
    """``40MB/s``, ``500KB/s``, ``1.5MiB/s``, ``1000000`` -> bytes per second."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)(i?)[bB]?(?:/s)?\s*", text)
    if not m:
        raise InputError(f"--max-rate {text!r} is not a rate like 40MB/s or 500KB/s")
    value = float(m.group(1))
    base = 1024 if m.group(3) else 1000
    value *= {"": 1, "k": base, "m": base**2, "g": base**3}[m.group(2).lower()]
    if value < 1:
        raise InputError(f"--max-rate {text!r} must be at least 1 byte/s")
    return int(value)


@dataclass
class SendOptions:
    associations: int = 2
    calling_ae: str = "PACSCOPY"
    max_rate: int | None = None
    window: Window | None = None
    where: str | None = None
    limit: int | None = None
    timeout: float = 20.0
    retries: int = 4
    backoff: float = 1.0
    wait_for_target: float = 120.0
    transcode: bool = False
    updates: bool = True  # also send updates of instances the target already has (issue 14)
    updates_only: bool = False  # a delta run: only updates
