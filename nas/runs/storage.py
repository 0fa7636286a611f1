"""The run's Optuna storage and study: where it is, opening it safely, creating a run's study."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from nas.errors import NasInputError
from nas.runs.folder import STUDY_FILE
from nas.runs.urls import connect_url, is_sqlite, mask_text, mask_url, public_url

if TYPE_CHECKING:
    import optuna

DIRECTIONS = ("maximize", "minimize")  # accuracy up, cost down


def storage_url(run_path: str | Path, config: dict[str, Any]) -> str:
    """The Optuna storage URL of a run: its ``study.db`` unless the run named an RDB URL."""
    url = config.get("storage")
    if url:
        return str(url)
    return f"sqlite:///{(Path(run_path) / STUDY_FILE).resolve()}"


def study_storage(url: str, attempts: int = 5) -> Any:
    """The Optuna storage for ``url`` (SQLite, PostgreSQL or any RDB URL SQLAlchemy reads).

    A bare ``postgresql://`` opens with the PostgreSQL driver that is installed
    (nas.runs.urls.connect_url); without one -> ``ModuleNotFoundError`` naming the extra.

    SQLite waits for a busy writer instead of failing after 5 s (a reader such as
    optuna-dashboard or ``nas pareto`` may hold the file while a search writes). Creating
    the storage creates its tables when they are missing; two processes doing that at once
    (a search starting while a dashboard opens the new file) make one of them fail with
    "table already exists" or a duplicate schema version (PostgreSQL: a duplicate table or a
    unique violation in its catalog), so that step is retried: the second attempt finds the
    schema the other process made.
    """
    import optuna
    import sqlalchemy.exc

    url = connect_url(url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if is_sqlite(url) else {}
    races = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)
    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except races:
            time.sleep(0.2 * attempt)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)  # the last attempt's error propagates


def storage_error(url: str, exc: BaseException) -> str:
    """What went wrong opening the storage at ``url``, fit to print (no password), with the fix
    when it is a missing driver or a password the recorded URL does not carry."""
    if isinstance(exc, ModuleNotFoundError):
        return f"its database driver is not installed ({exc.name}): pip install 'nas[postgres]' for PostgreSQL"
    text = mask_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
    if "password" in text.lower() and not is_sqlite(url) and public_url(url) == url:  # the URL has none
        text += ("; give the password with PGPASSWORD or ~/.pgpass (a run folder records its storage URL "
                 "without it), or with --resume RUN --storage URL-with-password")
    return text


def open_study(run_path: str | Path, config: dict[str, Any], sampler: Any = None) -> "optuna.Study":
    """The run's existing study; a missing study or unreadable storage -> :class:`NasInputError`."""
    import optuna

    url = storage_url(Path(run_path), config)
    try:
        return optuna.load_study(study_name=config["study_name"], storage=study_storage(url), sampler=sampler)
    except KeyError:
        raise NasInputError(f"{run_path}: study {config['study_name']!r} not found in {mask_url(url)}") from None
    except Exception as exc:  # noqa: BLE001 - storage errors come in many types (sqlalchemy, ...)
        raise NasInputError(f"{run_path}: cannot open study storage {mask_url(url)}: {storage_error(url, exc)}") from None


def create_study(run_path: str | Path, config: dict[str, Any], sampler: Any,
                 enqueue: Iterable[dict] = ()) -> "optuna.Study":
    """A new run's study, named and labelled from its config; ``enqueue``: params to try first."""
    import optuna

    url = storage_url(Path(run_path), config)
    try:
        study = optuna.create_study(study_name=config["study_name"], storage=study_storage(url), sampler=sampler,
                                    directions=list(DIRECTIONS), load_if_exists=False)
    except optuna.exceptions.DuplicatedStudyError:
        raise NasInputError(
            f"--storage {mask_url(url)}: a study named {config['study_name']!r} already exists there; "
            f"use a fresh storage or --resume the run that owns it"
        ) from None
    study.set_metric_names(list(config["objectives"]))
    study.set_user_attr("nas_run", config["name"])
    for params in enqueue:
        study.enqueue_trial(dict(params), skip_if_exists=False)
    return study


def running_trial(study: "optuna.Study", storage: Any, number: int) -> "optuna.trial.Trial":
    """Trial ``number`` of ``study``, still RUNNING, as an ``optuna.Trial`` whose attributes can be set
    (e.g. one a killed search left behind). ``storage``: one on the study's database
    (:func:`study_storage`); a study alone gives no public way to a trial it did not ask itself.
    """
    import optuna

    study_id = storage.get_study_id_from_name(study.study_name)
    return optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))


def study_names(url: str) -> set[str]:
    """The names of the studies in the storage at ``url`` (opening it; storage errors propagate)."""
    return {st.study_name for st in study_storage(url).get_all_studies()}


__all__ = ["DIRECTIONS", "create_study", "open_study", "running_trial", "storage_error", "storage_url", "study_names",
           "study_storage"]
