"""Before anything runs: validate every input of a new or resumed search, and make its config.

Nothing is started or written here except the output folder's existence (proved writable):
the space, the dataset (downloaded here, once, before Ray starts), the objectives and
numbers, the storage, the run name and - for a new run - that some candidate fits the
trial memory and the constraints. Bad input -> :class:`NasInputError`.

Resume (``--resume RUN``): the settings come from the run's ``config.json`` (migrated by
nas.runs.folder) and the space from ``RUN/space.toml``; the resources, the budget (raise
only) and the output options may be given anew and then override what the run recorded.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from nas.errors import NasInputError
from nas.runs import folder
from nas.runs.lock import RunLock
from nas.runs.storage import storage_error, study_names
from nas.runs.urls import mask_url, same_storage
from nas.search.feasibility import check_feasible, check_space, trial_memory_budget_mb
from nas.search.fidelity import Fidelity
from nas.search.settings import (
    DEFAULT_CPUS_PER_TRIAL,
    DEFAULT_GPUS_PER_TRIAL,
    SearchSettings,
    check_numbers,
    parse_objectives,
)


@dataclass
class Prepared:
    """Validated inputs, ready to run; ``settings.fidelity`` is bound to the run's data."""

    settings: SearchSettings
    space: Any
    space_text: str
    dataset_info: dict[str, Any]
    run_path: Path
    config: dict[str, Any]
    resuming: bool


def prepare(settings: SearchSettings) -> Prepared:
    """Validate everything; nothing is written except the output folder's existence."""
    return _prepare_resume(settings) if settings.resume else _prepare_new(settings)


def _prepare_new(settings: SearchSettings) -> Prepared:
    if not settings.space:
        raise NasInputError("--space is required (a built-in name such as mdconv, or a .toml file)")
    s = replace(settings, objectives=parse_objectives(settings.objectives),
                cpus_per_trial=_given(settings.cpus_per_trial, DEFAULT_CPUS_PER_TRIAL),
                gpus_per_trial=_given(settings.gpus_per_trial, DEFAULT_GPUS_PER_TRIAL))
    check_numbers(s)
    from nas.space import load_space

    space = load_space(s.space)
    check_space(space)
    space_text = folder.read_space_text(space)
    info = dataset_info(s.dataset, s.data_dir, s.fidelity, s.download)
    _check_space_matches(space, info)
    out = Path(s.out)
    folder.check_writable_dir(out, "--out")
    name = folder.check_run_name(s.name) if s.name else folder.default_run_name(space.name, info["name"])
    run_path = out / name
    if run_path.exists() and any(run_path.iterdir()):
        raise NasInputError(f"{run_path}: run folder already exists; continue it with --resume {run_path} or pick another --name")
    if s.storage:
        _check_storage(s.storage, new_study=name)
    s.trial_memory_mb = s.trial_memory_mb or trial_memory_budget_mb(s)
    s.fidelity = s.fidelity.bound(info["name"], info["data_dir"], s.seed, info.get("train_images"))
    check_feasible(space, s, info)
    config = new_config(s, space, space_text, info, name)
    return Prepared(s, space, space_text, info, run_path, config, resuming=False)


def _prepare_resume(settings: SearchSettings) -> Prepared:
    run_path = Path(settings.resume)
    if run_path.is_dir():
        RunLock(run_path).check_free()  # a running search first: its files may still be appearing
    config = folder.read_config(run_path)
    folder.check_writable_dir(run_path, "--resume")
    space = folder.load_run_space(run_path, config)
    space_text = (run_path / folder.SPACE_FILE).read_text(encoding="utf-8")
    if settings.storage:
        config = _resume_storage(config, settings.storage, run_path)
    s = resumed_settings(config, settings, run_path)
    check_numbers(s)
    if s.budget < int(config["budget"]):
        raise NasInputError(f"--budget {s.budget} is below the run's budget {config['budget']}; a resume can only extend it")
    info = dataset_info(s.dataset, s.data_dir, s.fidelity)
    _check_space_matches(space, info)
    if s.storage:
        _check_storage(s.storage)
    s.fidelity = s.fidelity.bound(info["name"], info["data_dir"], s.seed, info.get("train_images"))
    return Prepared(s, space, space_text, info, run_path, config, resuming=True)


def resumed_settings(config: dict[str, Any], given: SearchSettings, run_path: Path) -> SearchSettings:
    """The settings of a resumed run: what its config.json records, except what may be given anew
    (budget, resources, output options), which overrides it when given (not None)."""
    res = config.get("resources", {})
    constraints = config.get("constraints", {})
    return SearchSettings(
        space=config["space"].get("source"),
        budget=_given(given.budget, int(config["budget"])),
        dataset=config["dataset"]["name"],
        data_dir=config["dataset"].get("data_dir"),
        objectives=tuple(config["objectives"]),
        max_mflops=constraints.get("max_mflops"),
        max_params=constraints.get("max_params"),
        sampler=config["sampler"],
        seed=int(config["seed"]),
        out=str(run_path.parent),
        name=run_path.name,
        cpus_per_trial=float(_given(given.cpus_per_trial, res.get("cpus_per_trial", DEFAULT_CPUS_PER_TRIAL))),
        gpus_per_trial=float(_given(given.gpus_per_trial, res.get("gpus_per_trial", DEFAULT_GPUS_PER_TRIAL))),
        address=given.address or None,
        storage=config.get("storage"),
        fidelity=Fidelity.from_dict(config["fidelity"]),
        resume=str(run_path),
        verbose=given.verbose,
        status_interval=given.status_interval,
        num_cpus=given.num_cpus,
        trial_memory_mb=constraints.get("trial_memory_mb"),
        trial_cpu_limit=constraints.get("trial_cpu_limit_s"),
    )


def _given(value: Any, otherwise: Any) -> Any:
    """A setting given anew (not None) wins over the default or the recorded value."""
    return value if value is not None else otherwise


def dataset_info(name: str, data_dir: Optional[str], fid: Fidelity, download: bool = False) -> dict[str, Any]:
    """What the run records of its dataset (loading it: the download, if any, happens here)."""
    from nas.data import load_dataset

    # Downloading (checksummed) happens here, once, before Ray starts; workers then find the files.
    ds = load_dataset(name, data_dir, download=download)
    n = len(ds.train)
    if fid.proxy.val_size >= n:
        raise NasInputError(f"--val-size {fid.proxy.val_size} must be smaller than the {n} training images of {ds.name}")
    return {
        "name": ds.name,
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        "num_classes": ds.num_classes,
        "in_chans": ds.in_chans,
        "image_size": ds.image_size,
        "train_images": n,
    }


def _check_space_matches(space: Any, info: dict[str, Any]) -> None:
    if space.input_channels != info["in_chans"]:
        raise NasInputError(
            f"space {space.name!r} expects {space.input_channels}-channel input but dataset "
            f"{info['name']!r} has {info['in_chans']} channel(s); pick a matching --space or --dataset"
        )


def _resume_storage(config: dict[str, Any], given: str, run_path: Path) -> dict[str, Any]:
    """``--resume RUN --storage URL``: the URL (with the password config.json leaves out) must name
    the storage the run records; the run's config then opens it with the given URL (in memory only)."""
    recorded = config.get("storage")
    if not recorded:
        raise NasInputError(f"--storage: {run_path} keeps its study in its own {folder.STUDY_FILE}; drop --storage")
    if not same_storage(given, recorded):
        raise NasInputError(f"--storage {mask_url(given)} is not the storage of {run_path} ({mask_url(recorded)}); "
                            f"with --resume, --storage may only give that URL again (with its password)")
    return {**config, "storage": given}


def _check_storage(url: str, new_study: Optional[str] = None) -> None:
    """The RDB storage opens; for a new run, it has no study of that name yet."""
    try:
        names = study_names(url)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy & co raise many kinds
        raise NasInputError(f"--storage {mask_url(url)}: cannot open: {storage_error(url, exc)}") from None
    if new_study is not None and new_study in names:
        raise NasInputError(
            f"--storage {mask_url(url)}: it already holds a study named {new_study!r}; pick another --name "
            f"or --resume the run that owns it"
        )


def new_config(s: SearchSettings, space: Any, space_text: str, info: dict[str, Any], name: str) -> dict[str, Any]:
    """A new run's ``config.json`` (the format is described in nas.runs.folder)."""
    memory = None if not math.isfinite(s.trial_memory_mb) else round(float(s.trial_memory_mb), 1)
    return {
        "format": folder.CONFIG_FORMAT,
        "name": name,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": folder.command_line(),
        "study_name": name,  # one study per run: several runs can share one --storage
        "storage": s.storage,
        "space": folder.space_record(space, space_text),
        "dataset": info,
        "objectives": list(s.objectives),
        "constraints": {"max_mflops": s.max_mflops, "max_params": s.max_params,
                        "trial_memory_mb": memory, "trial_cpu_limit_s": s.trial_cpu_limit},
        "sampler": s.sampler,
        "seed": s.seed,
        "budget": s.budget,
        "budget_counts": "trained candidates: COMPLETE + PRUNED + FAIL while training; infeasible and interrupted ones do not count",
        "fidelity": s.fidelity.to_dict(),
        "resources": resources_record(s),
        "versions": folder.versions(),
        "resumes": [],
    }


def resources_record(s: SearchSettings) -> dict[str, Any]:
    """The ``resources`` section of ``config.json`` (rewritten on every resume)."""
    return {"cpus_per_trial": s.cpus_per_trial, "gpus_per_trial": s.gpus_per_trial, "address": s.address}


__all__ = ["Prepared", "dataset_info", "new_config", "prepare", "resources_record", "resumed_settings"]
