"""When a failed delivery is tried again, when it is dead, and when its subscription is paused (pure rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The n-th failed attempt waits min(base * 2^(n-1), cap) seconds, shortened by a random part of up to `jitter`
    of it (so deliveries that failed together do not come back together), never past the delivery's expiry: an
    attempt that fails at or after it makes the delivery dead."""

    base_seconds: float = 10.0
    cap_seconds: float = 3600.0
    jitter: float = 0.2
    max_age_seconds: float = 24 * 3600.0

    def wait(self, attempt: int) -> float:
        """The wait after the `attempt`-th failure, before jitter."""
        exponent = min(max(attempt, 1) - 1, 64)
        return float(min(self.base_seconds * 2.0 ** exponent, self.cap_seconds))

    def delay(self, attempt: int, random_fraction: float) -> float:
        """The wait with jitter; `random_fraction` in [0, 1)."""
        return self.wait(attempt) * (1.0 - self.jitter * random_fraction)

    def schedule(self, attempts: int) -> list[float]:
        """The waits after the first `attempts` failures, before jitter (10, 20, 40, … 3600, 3600, …)."""
        return [self.wait(attempt) for attempt in range(1, attempts + 1)]

    def next_attempt(self, *, failed_at: datetime, attempt: int, expires_at: datetime,
                     random_fraction: float) -> datetime | None:
        """When to try again after the `attempt`-th failure, or None: the delivery is dead."""
        if failed_at >= expires_at:
            return None
        return min(failed_at + timedelta(seconds=self.delay(attempt, random_fraction)), expires_at)


@dataclass(frozen=True, slots=True)
class PausePolicy:
    """A subscription is paused when its last `after_failures` attempts all failed and the first of them was at least
    `min_failing_seconds` ago: a receiver that is down for a moment under load is not paused, one that keeps failing
    is, and stops costing attempts until an admin resumes it."""

    after_failures: int = 20
    min_failing_seconds: float = 3600.0

    def should_pause(self, *, consecutive_failures: int, failing_since: datetime | None, now: datetime) -> bool:
        if consecutive_failures < self.after_failures or failing_since is None:
            return False
        return (now - failing_since).total_seconds() >= self.min_failing_seconds
