"""What ``nas retrain`` and ``nas export`` work on: the run (if any), where its pick folders are,
the data set the picks train on, and a one-point space as a pick."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import NasInputError
from nas.picks import Pick
from nas.runs.pick_folders import picks_root


@dataclass
class Context:
    """Where picks go and what data they train on."""

    picks_root: Path
    run: Any = None  # nas.runs.Run or None
    dataset_name: str | None = None
    data_dir: str | None = None

    def load_dataset(self):
        from nas.data import load_dataset

        if not self.dataset_name:
            raise NasInputError("no data set: give a run folder (RUN) or --dataset NAME")
        ds = load_dataset(self.dataset_name, self.data_dir)
        if self.run is not None:
            rec = self.run.config.get("dataset", {}) or {}
            for key, have in (("num_classes", ds.num_classes), ("in_chans", ds.in_chans), ("image_size", ds.image_size)):
                want = rec.get(key)
                if want is not None and int(want) != int(have):
                    raise NasInputError(
                        f"{self.run.path}: the run used {self.dataset_name} with {key}={want}, "
                        f"but the data loaded now has {key}={have} (check --data-dir)"
                    )
        return ds


def make_context(run_path: str | None, out: str | None = None, dataset: str | None = None,
                 data_dir: str | None = None) -> Context:
    """Open ``RUN`` (if given): picks go to ``<RUN>/picks`` unless ``out``; the data set is the
    run's (``dataset``, if also given, must agree). Without RUN, ``out`` and ``dataset`` are needed."""
    run = None
    name, ddir = dataset, data_dir
    if run_path:
        import nas

        run = nas.load_run(run_path)
        rec = run.config.get("dataset", {}) or {}
        run_ds = rec.get("name") if isinstance(rec, dict) else rec
        if dataset and run_ds and _ds_key(dataset) != _ds_key(run_ds):
            raise NasInputError(f"--dataset {dataset}: the run {run_path} was searched on {run_ds}; "
                                f"picks are retrained on the run's data set")
        name = run_ds or dataset
        ddir = data_dir or (rec.get("data_dir") if isinstance(rec, dict) else None)
        root = Path(out) if out else picks_root(run_path)
    else:
        if not out:
            raise NasInputError("without a run folder (RUN), give --out DIR for the pick folders")
        root = Path(out)
    return Context(picks_root=root, run=run, dataset_name=name, data_dir=ddir)


def _ds_key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def space_pick(name_or_path: str, pick_name: str | None = None) -> Pick:
    """The one architecture of a one-point space (``mixnet-s``, a ``.toml`` path) as a pick."""
    import nas

    space = nas.load_space(name_or_path)
    size = space.size()
    if size != 1:
        raise NasInputError(f"--space {name_or_path}: a space with {size} architectures, not a one-point space; "
                            f"use --arch with one of its genotypes")
    arch = str(space.sample(0))
    return Pick(name=pick_name or space.name, arch=arch, source="space")


__all__ = ["Context", "make_context", "space_pick"]
