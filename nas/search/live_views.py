"""The run's views kept current while a search runs (after every finished trial)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from nas.runs.pick_folders import picks_decoration
from nas.runs.views import write_views

PNG_EVERY_S = 60.0


class LiveViews:
    """Rewrites trials.csv/pareto.csv after each finished trial, pareto.png at most every minute
    (with the run's retrained picks ringed, as ``nas pareto --plot`` draws it)."""

    def __init__(self, run_path: Path, study: Any, config: dict[str, Any]) -> None:
        self.run_path, self.study, self.config = run_path, study, config
        self._last_png = time.time()  # the first plot after a minute; write_all() plots at the end

    def _write(self, plot: bool):
        decorate = picks_decoration(self.run_path) if plot else None
        return write_views(self.run_path, self.study, self.config, plot=plot, decorate=decorate)

    def after_trial(self) -> None:
        now = time.time()
        plot = now - self._last_png >= PNG_EVERY_S
        try:
            self._write(plot)
        except Exception as exc:  # noqa: BLE001 - a view that fails to render must not stop the search
            print(f"[nas] warning: could not rewrite the run's CSV/PNG views: {exc}", file=sys.stderr)
            return
        if plot:
            self._last_png = now

    def write_all(self):
        """All views, the plot included; returns the front."""
        return self._write(True)


__all__ = ["LiveViews", "PNG_EVERY_S"]
