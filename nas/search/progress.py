"""The one live status line of a search, as a Ray Tune ``Callback``.

    [nas] 37/200 trained | 2 running | 11 pruned | 1 failed | 4 rejected | front 6 | best 91.2% | 5:12 elapsed | ETA 22:40

On a TTY the line is rewritten in place (``\\r`` + clear to end of line) at most a
few times a second; otherwise (a log file, CI) a plain line is printed every
``interval`` seconds and when the search ends. It goes to stderr, so stdout keeps
only the final table.

ETA: the remaining budget times the mean wall time per trained trial in this
session (parallel slots included), shown once a trial has finished.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Callable

from ray.tune import Callback


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def status_text(stats: dict[str, Any], now: float) -> str:
    """The status line from a stats dict (see ``SearchState.stats``); pure, for tests."""
    done, budget = stats["done"], stats["budget"]
    parts = [f"[nas] {done}/{budget} trained", f"{stats['running']} running"]
    if stats.get("pruned"):
        parts.append(f"{stats['pruned']} pruned")
    parts.append(f"{stats['failed']} failed")
    if stats.get("rejected"):
        parts.append(f"{stats['rejected']} rejected")
    parts.append(f"front {stats['front']}")
    best = stats.get("best")
    parts.append(f"best {best * 100:.1f}%" if best is not None else "best -")
    elapsed = now - stats["started"]
    parts.append(f"{format_duration(elapsed)} elapsed")
    session_done = stats.get("session_done", 0)
    if session_done > 0 and done < budget:
        eta = elapsed / session_done * (budget - done)
        parts.append(f"ETA {format_duration(eta)}")
    return " | ".join(parts)


class StatusLine(Callback):
    """Prints :func:`status_text` of ``stats()``; ``close()`` ends the line."""

    def __init__(
        self,
        stats: Callable[[], dict[str, Any]],
        stream: IO[str] | None = None,
        interval: float = 30.0,
        tty: bool | None = None,
        on_running: Callable[[int], None] | None = None,
    ) -> None:
        self.stats = stats
        self.on_running = on_running
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval if not self.tty else 0.25
        self._last = 0.0
        self._shown = False
        self._width = 0

    # Driver-side only: Ray pickles its Tuner state (for Tuner.restore, never used here).
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def show(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        text = status_text(self.stats(), now)
        try:
            if self.tty:
                self.stream.write("\r" + text + "\x1b[K")
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            return
        self._shown = True

    def close(self) -> None:
        """Print the final state (ending the TTY line with a newline)."""
        self.show(force=True)
        if self.tty and self._shown:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    # Ray Tune hooks: refresh on events, and on every loop step for the clock.
    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._count_running(trials)
        self.show()

    def _count_running(self, trials: list) -> None:
        if self.on_running is not None:
            self.on_running(sum(1 for t in trials if getattr(t, "status", None) == "RUNNING"))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._count_running(trials)
        self.show(force=self.tty)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._count_running(trials)
        self.show(force=self.tty)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._count_running(trials)
        self.show(force=self.tty)


__all__ = ["StatusLine", "format_duration", "status_text"]
