"""Bounded-memory statistics shared by the generator and the sink."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

SUB_BITS = 7  # 128 sub-buckets per power of two: relative error < 1/64 (1.6 %)
_LINEAR = 1 << SUB_BITS


class LogHistogram:
    """Histogram of non-negative integers (ns) with log-linear buckets.

    Values below 128 are exact; above, each power of two is split in 64 buckets, so a
    percentile is off by less than 1.6 % of its value. Exact count, sum, min and max.
    Memory: at most 64 buckets per power of two actually seen (sparse dict).
    """

    __slots__ = ("buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    @staticmethod
    def key(v: int) -> int:
        if v < _LINEAR:
            return v
        shift = v.bit_length() - SUB_BITS
        return (shift << SUB_BITS) | (v >> shift)

    @staticmethod
    def bucket_range(key: int) -> tuple[int, int]:
        """The values [low, high] that fall in bucket ``key``."""
        if key < _LINEAR:
            return key, key
        shift, m = key >> SUB_BITS, key & (_LINEAR - 1)
        return m << shift, ((m + 1) << shift) - 1

    def add(self, v: int) -> None:
        if v < 0:
            v = 0
        k = v if v < _LINEAR else ((v.bit_length() - SUB_BITS) << SUB_BITS) | (
            v >> (v.bit_length() - SUB_BITS))
        b = self.buckets
        b[k] = b.get(k, 0) + 1
        self.count += 1
        self.total += v
        if self.min is None or v < self.min:
            self.min = v
        if self.max is None or v > self.max:
            self.max = v

    def merge(self, other: LogHistogram) -> None:
        for k, c in other.buckets.items():
            self.buckets[k] = self.buckets.get(k, 0) + c
        self.count += other.count
        self.total += other.total
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile ``q`` (0..100): the midpoint of its bucket, clamped
        to [min, max]; None when empty."""
        if not self.count or self.min is None or self.max is None:
            return None
        rank = max(1, math.ceil(q / 100 * self.count))
        acc = 0
        for k in sorted(self.buckets):
            acc += self.buckets[k]
            if acc >= rank:
                lo, hi = self.bucket_range(k)
                return min(max((lo + hi) / 2, self.min), self.max)
        return float(self.max)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def summary_us(self) -> dict[str, Any]:
        """min/avg/p50/p90/p99/max in microseconds (None when empty)."""
        def us(v: float | None) -> float | None:
            return None if v is None else round(v / 1e3, 3)

        return {"count": self.count, "min": us(self.min), "avg": us(self.mean),
                "p50": us(self.percentile(50)), "p90": us(self.percentile(90)),
                "p99": us(self.percentile(99)), "max": us(self.max)}


def open_timeseries(target: Any, fields: Sequence[str], line_buffered: bool = True
                    ) -> tuple[IO[str] | None, Any, bool]:
    """Open a time-series CSV: ``target`` is a path, an open text file or None
    (``line_buffered``: a file we open is flushed at each row).

    Returns (file, csv writer with the header written, whether we opened the file and
    so must close it); (None, None, False) for no target."""
    if target is None:
        return None, None, False
    if hasattr(target, "write"):
        fh, own = target, False
    else:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "w", newline="", buffering=1 if line_buffered else -1)  # noqa: SIM115
        own = True
    writer = csv.writer(fh)
    writer.writerow(fields)
    return fh, writer, own
