"""The search: Ray Tune runs the trials, an Optuna study (ask/tell, RDB storage) is the truth.

From the command line to a trial, in the order a search uses them:

- :mod:`nas.search.settings`     ``SearchSettings`` / ``SearchOutcome``, samplers, checks of plain values
- :mod:`nas.search.fidelity`     ``Fidelity``: the proxy a trial trains with + successive halving (one typed value)
- :mod:`nas.search.feasibility`  cost and training-memory measures; does any candidate fit at all
- :mod:`nas.search.prepare`      validate a new or resumed search, make its config (``prepare``)
- :mod:`nas.search.ray_setup`    start/join Ray, its environment and quiet loggers for the search only
- :mod:`nas.search.driver`       the run itself: lock, study, Ray Tune, views (``run_search``)
- :mod:`nas.search.searcher`     Ray ``Searcher`` over the Optuna study; how trials are told
- :mod:`nas.search.scheduler`    multi-objective asynchronous successive halving (``TrialScheduler``)
- :mod:`nas.search.interrupt`    Ctrl-C: stop cleanly, then abort
- :mod:`nas.search.progress`     the live status line (Ray ``Callback``)
- :mod:`nas.search.live_views`   trials.csv / pareto.csv / pareto.png kept current during a search
- :mod:`nas.search.trainable`    what a Ray worker runs for one candidate (``TrialSpec``, via evaluators.proxy)

The run folder itself is nas.runs; the multi-objective maths nas.moo.
Importing this package is light (no torch, no ray); the sub-modules import them.
"""
