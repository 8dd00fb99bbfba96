"""A progress bar for long benchmark runs: live on a terminal, sparse lines in logs.

On a terminal the bar redraws in place with the step, percentage, elapsed time and an estimate of
what is left; in a pipe or CI log it prints a line per step at most every few seconds, so logs stay
readable and a stuck step still shows which one it was.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

_LOG_EVERY_S = 5.0
_WIDTH = 24


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Counts ``total`` steps of work; ``step(label)`` starts the next one."""

    def __init__(self, total: int, title: str = "", stream: TextIO | None = None,
                 live: bool | None = None) -> None:
        self.total = max(1, total)
        self.title = title
        self.done = 0
        self._stream: TextIO = stream if stream is not None else sys.stderr
        self._live = bool(self._stream.isatty()) if live is None else live
        self._started = time.monotonic()
        self._last_line = -_LOG_EVERY_S
        self._label = ""

    def step(self, label: str) -> None:
        """Mark the previous step done (if any) and show ``label`` as the one running now."""
        if self._label:
            self.done = min(self.total, self.done + 1)
        self._label = label
        self._show(force=not self._live and self.done == 0)

    def note(self, label: str) -> None:
        """Show what the running step is doing without counting a step."""
        self._label = label
        self._show()

    def line(self) -> str:
        """The text of the bar as it would be shown now."""
        elapsed = time.monotonic() - self._started
        share = self.done / self.total
        filled = round(share * _WIDTH)
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        eta = f" eta {_clock(left)}" if self.done else ""
        head = f"{self.title} " if self.title else ""
        return (f"{head}[{'#' * filled}{'.' * (_WIDTH - filled)}] {self.done}/{self.total} "
                f"{share:4.0%} {_clock(elapsed)}{eta}  {self._label}")

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._live:
            self._stream.write("\r\033[K" + self.line())
        elif force or now - self._last_line >= _LOG_EVERY_S:
            self._stream.write(self.line() + "\n")
        else:
            return
        self._last_line = now
        self._stream.flush()

    def close(self, failed: bool = False) -> None:
        """Count the last step (unless the run ``failed``) and finish the line."""
        if self._label and not failed:
            self.done = min(self.total, self.done + 1)
        self._label = "stopped" if failed else "done"
        if self._live:
            self._stream.write("\r\033[K" + self.line() + "\n")
        else:
            self._stream.write(self.line() + "\n")
        self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        self.close(failed=exc_type is not None)
