"""Bounded, jittered exponential back-off, shared by the lock waits and the conflict retries."""

from __future__ import annotations

import random
import time


class Backoff:
    """``while ...: if not backoff.wait(): give up``: each wait sleeps ``delay`` plus up to as much
    again at random (so processes that collided do not collide again in step), doubling up to
    ``cap``; ``wait`` returns False once ``timeout_s`` has passed or ``max_attempts`` waits were made."""

    def __init__(
        self, timeout_s: float, max_attempts: int | None = None, first_s: float = 0.05, cap_s: float = 2.0
    ) -> None:
        self.deadline = time.monotonic() + timeout_s
        self.max_attempts = max_attempts
        self.delay = first_s
        self.cap_s = cap_s
        self.waits = 0
        self.started = time.monotonic()

    def wait(self) -> bool:
        if time.monotonic() > self.deadline:
            return False
        if self.max_attempts is not None and self.waits >= self.max_attempts:
            return False
        time.sleep(self.delay + random.random() * self.delay)
        self.delay = min(self.delay * 2, self.cap_s)
        self.waits += 1
        return True

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started
