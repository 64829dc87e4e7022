"""Progress with an ETA for long stages: a tqdm bar on a terminal, a plain line every few seconds in a log."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from tqdm import tqdm

LOG_EVERY_SECONDS = 5.0  # a log line at most this often when stderr is not a terminal, so logs stay readable


class Progress:
    """Counts work done out of `total` units (images, draws); thread-safe, so estimator workers may report."""

    def __init__(
        self, total: float, description: str, unit: str = "it", stream: TextIO | None = None, enabled: bool = True
    ):
        self.stream = stream or sys.stderr
        self.total, self.description, self.unit, self.enabled = max(float(total), 1.0), description, unit, enabled
        self.done, self.started, self.last_line = 0.0, time.monotonic(), time.monotonic()
        self.lock = threading.Lock()
        interactive = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = (
            tqdm(
                total=self.total,
                desc=description,
                unit=unit,
                unit_scale=True,
                leave=False,
                dynamic_ncols=True,
                file=self.stream,
            )
            if interactive
            else None
        )

    def update(self, amount: float = 1.0) -> None:
        """Add `amount` units of finished work."""
        if not self.enabled:
            return
        with self.lock:
            self.done += amount
            if self.bar is not None:
                self.bar.update(amount)
            elif time.monotonic() - self.last_line >= LOG_EVERY_SECONDS:
                self.last_line = time.monotonic()
                print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """'evaluate vae: 40% (12.0 s, ETA 18 s)': the plain form of the bar."""
        elapsed = time.monotonic() - self.started
        share = min(self.done / self.total, 1.0)
        eta = f", ETA {elapsed * (1 - share) / share:.0f} s" if 0 < share < 1 else ""
        return f"{self.description}: {share:.0%} ({elapsed:.1f} s{eta})"

    def close(self) -> None:
        """Finish the bar, or print the last plain line when the work took long enough to have logged any."""
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and time.monotonic() - self.started >= LOG_EVERY_SECONDS:
            print(f"{self.description}: done in {time.monotonic() - self.started:.1f} s", file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
