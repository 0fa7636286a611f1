"""A one-shot search's supernet: which folder scores the candidates, the fidelity it sets, and its
training when it is not there yet, which starts only once every other input has been checked.

``nas search --proxy supernet`` scores with ``--supernet DIR``, or by default with
``results/supernet-SPACE``, trained first (with :class:`OneShotConfig`'s defaults for the space
and data set) if it is missing or unfinished.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from nas.errors import NasInputError
from nas.supernet.folder import CONFIG_FILE, OneShotConfig, default_folder, read_config


@dataclass(frozen=True)
class SearchSupernet:
    """The supernet folder of a one-shot search, its config (config.json read once) and whether it is trained."""

    folder: Path
    config: OneShotConfig
    complete: bool

    def fidelity_options(self, epochs: Optional[int], val_size: Optional[int],
                         screen_size: Optional[int] = None) -> dict[str, Any]:
        """The fidelity options a one-shot search takes from its supernet when not given: its
        resolution and held-out images (a candidate is scored where the supernet was), and one
        epoch: the inherited score alone, since fine-tuning at full size costs what scratch
        training does (give --epochs to fine-tune the better candidates by successive halving).
        Scores are staged (``screen_size`` held-out images first; 0: one score): the screen is one
        step more before the full score, so a trial has ``epochs + 1`` steps. By default the
        screen is :data:`nas.supernet.scoring.SCREEN_HELD_OUT_IMAGES` images when the held-out
        images are at least twice that, else there is none (it would save little)."""
        from nas.supernet.scoring import SCREEN_HELD_OUT_IMAGES

        held_out = val_size if val_size is not None else self.config.val_size
        if screen_size is None:
            screen = SCREEN_HELD_OUT_IMAGES if held_out >= 2 * SCREEN_HELD_OUT_IMAGES else 0
        else:
            screen = int(screen_size)
        if screen >= held_out:
            raise NasInputError(f"--screen-size {screen} must be smaller than the {held_out} held-out images "
                                "it screens a part of (0: no screen)")
        steps = (epochs if epochs is not None else 1) + (1 if screen > 0 else 0)
        return {"resolution": self.config.resolution or 0, "val_size": held_out, "epochs": steps,
                "screen_size": screen}

    def train_unless_complete(self, settings: Any, threads: Optional[int]) -> None:
        """Train the supernet if it is not complete, after :func:`nas.search.prepare.prepare` has
        checked every other input of the search (``settings``): a bad option fails before the training."""
        if self.complete:
            return
        from nas.search.prepare import prepare
        from nas.supernet.lifecycle import train_supernet

        prepare(settings)
        print(f"nas search: training the supernet of {self.config.space} into {self.folder} first", file=sys.stderr)
        train_supernet(self.config, self.folder, threads=threads)


def choose_supernet(proxy: Optional[str], supernet: Optional[str], space: Optional[str], dataset: Optional[str],
                    data_dir: Optional[str], proxy_resolution: Optional[int]) -> Optional[SearchSupernet]:
    """The supernet a search with these options scores with (None: a scratch search), checked
    against the options: a supernet of the search's space, at the resolution it would score at."""
    if supernet is not None and proxy != "supernet":
        raise NasInputError("--supernet needs --proxy supernet")
    if proxy != "supernet":
        return None
    space = space or "mdconv"
    folder = Path(supernet) if supernet else default_folder(space)
    if (folder / CONFIG_FILE).exists():
        config, extra = read_config(folder)
        complete = bool(extra.get("complete"))
    elif supernet:
        raise NasInputError(f"--supernet {folder}: not a supernet folder (train one with nas supernet train)")
    else:
        config, complete = OneShotConfig(space=space, dataset=dataset or "fashion-mnist", data_dir=data_dir), False
    if str(config.space) != str(space):
        raise NasInputError(f"--supernet {folder}: a supernet of {config.space}, not of {space}")
    if proxy_resolution is not None and proxy_resolution != (config.resolution or 0):
        raise NasInputError(f"--supernet {folder}: trained at resolution {config.resolution or 'full'}, "
                            f"--proxy-resolution {proxy_resolution} would score at another; drop it")
    return SearchSupernet(folder, config, complete)


__all__ = ["SearchSupernet", "choose_supernet"]
