"""The run folder's files: their names, ``config.json`` (read, migrated, written) and the copied space.

A run folder (written by ``nas search``) holds::

    config.json   everything needed to resume or reproduce the run (below)
    space.toml    the exact text of the search space the run used
    study.db      the Optuna SQLite storage - the one source of truth
                  (absent when the run used ``--storage URL``: config.json names the URL,
                  without its password - nas.runs.urls)
    trials.csv    one row per trial (a view of the study, rewritten as the search goes)
    pareto.csv    the Pareto front (a view)
    pareto.png    accuracy against the cost objective, all trials, the front highlighted
    .lock         held by the search running on the folder (nas.runs.lock)

``config.json`` (format 1)::

    format, name, created, command          what made it (URL passwords in the command as ***)
    study_name, storage                     the Optuna study (storage null: ./study.db; a URL: no password)
    space      {name, source, sha256}       the space; its exact text is ./space.toml
    dataset    {name, data_dir, num_classes, in_chans, image_size, train_images}
    objectives ["accuracy", "mflops" | "params" | "latency_ms"]
    constraints {max_mflops, max_params, trial_memory_mb, trial_cpu_limit_s}   null when not set
    sampler, seed, budget
    fidelity   {epochs, min_epochs, eta, train_size, val_size, batch_size, lr, resolution, promotion, rungs}
    resources  {cpus_per_trial, gpus_per_trial, address}
    versions   {nas, python, torch, optuna, ray, platform}
    resumes    [{at, trials_in_study, counted_before, marked_interrupted, budget}]  one per --resume

Older runs are migrated here, on reading, and nowhere else (:func:`migrate_config`).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.atomic import write_atomic
from nas.errors import NasInputError
from nas.runs.urls import mask_command, public_url

CONFIG_FILE = "config.json"
STUDY_FILE = "study.db"
SPACE_FILE = "space.toml"
TRIALS_CSV = "trials.csv"
PARETO_CSV = "pareto.csv"
PARETO_PNG = "pareto.png"
LOCK_FILE = ".lock"
CONFIG_FORMAT = 1

# Fidelity keys older runs lack, with the value they ran with: the proxy's 14 px before
# --proxy-resolution, plain asynchronous promotion before --promotion, no finals before
# --final-epochs (and the finalists a resume with finals would take: Fidelity's default), one
# one-shot score before --screen-size.
OLDER_RUNS_FIDELITY = {"resolution": 14, "promotion": "asha", "proxy": "scratch", "supernet": None,
                       "final_epochs": 0, "finalists": 15, "finalists_by": "screening", "screen_size": 0}
_REQUIRED_KEYS = ("study_name", "objectives", "fidelity")


def read_config(path: str | Path) -> dict[str, Any]:
    """The run's ``config.json``, migrated to the current form; a folder that is not a run
    -> :class:`NasInputError` naming it."""
    run_path = Path(path)
    if not run_path.is_dir():
        raise NasInputError(f"{path}: no such run folder")
    cfg_file = run_path / CONFIG_FILE
    if not cfg_file.is_file():
        raise NasInputError(f"{path}: not a run folder (no {CONFIG_FILE}; `nas search` writes one)")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NasInputError(f"{cfg_file}: unreadable run config: {exc}") from None
    for key in _REQUIRED_KEYS:
        if key not in config:
            raise NasInputError(f"{cfg_file}: not a nas run config (missing key {key!r})")
    if not config.get("storage") and not (run_path / STUDY_FILE).is_file():
        raise NasInputError(f"{path}: run folder has no {STUDY_FILE}")
    return migrate_config(config)


def migrate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill in what older runs' configs lack with the value those runs ran with (in place)."""
    fidelity = config["fidelity"]
    for key, value in OLDER_RUNS_FIDELITY.items():
        fidelity.setdefault(key, value)
    fidelity.setdefault("full_fidelity", full_fidelity(fidelity))
    return config


def full_fidelity(fidelity: dict[str, Any]) -> int:
    """The steps of a fully trained candidate of a run's ``fidelity`` section: the proxy's epochs,
    plus one with finals (older runs record neither ``full_fidelity`` nor ``final_epochs``)."""
    if fidelity.get("full_fidelity"):
        return int(fidelity["full_fidelity"])
    return int(fidelity["epochs"]) + (1 if fidelity.get("final_epochs") else 0)


def write_config(run_path: str | Path, config: dict[str, Any]) -> None:
    """(Re)write ``<run>/config.json`` atomically (a reader never sees half of it). A storage URL
    is written without its password (the config in memory keeps it, to connect with)."""
    record = dict(config)
    if record.get("storage"):
        record["storage"] = public_url(str(record["storage"]))
    write_atomic(Path(run_path) / CONFIG_FILE, json.dumps(record, indent=2, sort_keys=False) + "\n")


def check_writable_dir(path: Path, what: str) -> None:
    """Create ``path`` (and parents) if needed and prove we can write a file there."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasInputError(f"{what} {path}: cannot create folder: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise NasInputError(f"{what} {path}: not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".nas-write-test-"):
            pass
    except OSError as exc:
        raise NasInputError(f"{what} {path}: not writable: {exc.strerror or exc}") from None


def default_run_name(space_name: str, dataset: str) -> str:
    return f"{space_name}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_run_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise NasInputError(f"--name {name!r}: a run name must be a plain folder name (no '/', not hidden)")
    return name


def command_line() -> list[str]:
    """The command as recorded: passwords in URL arguments (``--storage``) as ``***``."""
    return mask_command([Path(sys.argv[0]).name, *sys.argv[1:]])


def versions() -> dict[str, str]:
    import nas

    out = {"nas": nas.__version__, "python": platform.python_version(), "platform": platform.platform()}
    for mod in ("torch", "optuna", "ray"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a version we cannot read is just not recorded
            out[mod] = "unknown"
    return out


def space_record(space: Any, text: str) -> dict[str, Any]:
    return {
        "name": space.name,
        "source": str(space.path),
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }


def read_space_text(space: Any) -> str:
    """The exact text of the space file a Space was parsed from (built-in or user file)."""
    path = str(space.path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        from importlib import resources

        return (resources.files("search_spaces") / f"{space.name}.toml").read_text(encoding="utf-8")


def write_space_text(run_path: str | Path, text: str) -> None:
    write_atomic(Path(run_path) / SPACE_FILE, text)


def load_run_space(run_path: str | Path, config: dict[str, Any]):
    """The run's Space, parsed from ``<run>/space.toml`` (checked against the recorded hash)."""
    from nas.space import Space, parse_space

    file = Path(run_path) / SPACE_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise NasInputError(f"{file}: cannot read the run's space file: {exc.strerror or exc}") from None
    rec = config.get("space", {})
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if rec.get("sha256") and rec["sha256"] != digest:
        raise NasInputError(f"{file}: the space file was changed since the run started (sha256 differs from config.json)")
    return Space(parse_space(text, str(file), name=rec.get("name") or file.stem))


__all__ = [
    "CONFIG_FILE",
    "CONFIG_FORMAT",
    "LOCK_FILE",
    "PARETO_CSV",
    "PARETO_PNG",
    "SPACE_FILE",
    "STUDY_FILE",
    "TRIALS_CSV",
    "check_run_name",
    "check_writable_dir",
    "command_line",
    "default_run_name",
    "load_run_space",
    "migrate_config",
    "read_config",
    "read_space_text",
    "space_record",
    "versions",
    "write_config",
    "write_space_text",
]
