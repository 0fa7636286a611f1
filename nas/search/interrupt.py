"""Ctrl-C during a search: the first one stops it cleanly, a second one aborts at once.

Stopping cleanly: running trials are stopped and recorded as FAIL "interrupted" (not
counted), finished ones are kept, the views are rewritten. SIGTERM counts as a first Ctrl-C.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, Callable


class Interrupt:
    """First Ctrl-C (or SIGTERM): call ``on_stop``; second Ctrl-C: abort (KeyboardInterrupt).

    The handlers are installed only from the main thread (Python allows no other) and the
    previous ones are put back on exit.
    """

    def __init__(self, on_stop: Callable[[], None]) -> None:
        self.on_stop = on_stop
        self.stopped = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "Interrupt":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True
        self.on_stop()
        print("\n[nas] stopping: finishing bookkeeping, keeping every finished trial "
              "(Ctrl-C again to abort at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def stopper(should_stop: Callable[[], bool]):
    """A Ray Tune ``Stopper`` that ends the whole experiment once ``should_stop()`` says so."""
    from ray import tune

    class _StopOnInterrupt(tune.Stopper):
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            return should_stop()

    return _StopOnInterrupt()


__all__ = ["Interrupt", "stopper"]
