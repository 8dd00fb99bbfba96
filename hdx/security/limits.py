"""A token bucket: the control-channel rate limit of one viewer."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` events per second on average, bursts of ``burst``; ``allow()`` spends one."""

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def allow(self) -> bool:
        """True if one more event fits now."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
