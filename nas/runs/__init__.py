"""The run folder, one owner for its format; below the search, the picks and the CLI that use it.

- :mod:`nas.runs.folder`   file names, ``config.json`` (read + migration of older runs, write), space copy
- :mod:`nas.runs.lock`     ``RunLock``: one search at a time on a run folder
- :mod:`nas.runs.storage`  the Optuna storage (retried schema creation) and the run's study
- :mod:`nas.runs.trial_attrs`  a trial's attribute keys (run format) and ``tell_complete`` / ``tell_pruned`` / ``tell_fail``
- :mod:`nas.runs.urls`     storage URLs: passwords masked in output and left out of config.json
- :mod:`nas.runs.views`    ``Run`` / ``load_run``, trials and Pareto frames, trials.csv / pareto.csv / pareto.png
- :mod:`nas.runs.pick_folders`  ``RUN/picks/<name>/``: the retrained picks' folders, their one reader, their marks on the plot

Importing this package is light (no torch, no ray, no optuna until a study is opened).
"""

from nas.runs.views import Run, load_run

__all__ = ["Run", "load_run"]
