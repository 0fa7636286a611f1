"""The search: Ray Tune runs the trials, an Optuna study (ask/tell, RDB storage) is the truth.

- :mod:`nas.search.driver`     validate inputs, run folder + lock, Ray Tune, views (``run_search``)
- :mod:`nas.search.searcher`   Ray ``Searcher`` over the Optuna study; how trials are told
- :mod:`nas.search.scheduler`  multi-objective asynchronous successive halving (``TrialScheduler``)
- :mod:`nas.search.moo`        pure maths: non-dominated sort, crowding, promotion, hypervolume
- :mod:`nas.search.progress`   the live status line (Ray ``Callback``)
- :mod:`nas.search.runfolder`  config.json, lock, space copy
- :mod:`nas.search.trainable`  what a Ray worker runs for one candidate (via evaluators.proxy)

Importing this package is light (no torch, no ray); the sub-modules import them.
"""
