"""What a benchmark process used: CPU seconds and peak memory, read from the OS."""

from __future__ import annotations

import resource


def cpu_seconds() -> float:
    """User plus system CPU of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """The larger peak resident set of this process and of its waited-for children, in MB."""
    return max(resource.getrusage(who).ru_maxrss
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
