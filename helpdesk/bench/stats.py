"""Sampling helpers: percentiles, a statement counter on the engine, peak memory of a process."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import event


def percentile(values: Iterable[float], pct: float) -> float:
    """The nearest-rank percentile (pct in 0..100) of `values`; 0.0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Latency:
    """Summary of a list of durations in seconds, reported in milliseconds."""

    samples: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        ms = [s * 1000 for s in seconds]
        return cls(
            samples=len(ms),
            p50_ms=round(percentile(ms, 50), 2),
            p95_ms=round(percentile(ms, 95), 2),
            max_ms=round(max(ms), 2) if ms else 0.0,
            mean_ms=round(sum(ms) / len(ms), 2) if ms else 0.0,
        )


class StatementCounter:
    """Counts the SQL statements an engine sends while `active` (connect/disconnect as a pair)."""

    def __init__(self, engine):
        self.engine = engine
        self.count = 0
        self.active = False

    def _on_execute(self, *_args, **_kwargs) -> None:
        if self.active:
            self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on_execute)

    def measure(self):
        """Reset and start counting; returns self (use `.count` afterwards)."""
        self.count = 0
        self.active = True
        return self

    def stop(self) -> int:
        self.active = False
        return self.count


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident set size (VmHWM) of a live process, in MB; None when unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def current_rss_mb(pid: int) -> float | None:
    """The current resident set size (VmRSS) of a live process, in MB; None when unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def memory_gb() -> float | None:
    """Total RAM in GB from /proc/meminfo."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages (other work on the machine skews every figure)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
