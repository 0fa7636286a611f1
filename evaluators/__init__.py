"""Evaluators: what a candidate scores and costs, the scratch proxy training included.

- :mod:`evaluators.flops`: multiply-adds at batch 1 (fvcore, every op accounted for);
- :mod:`evaluators.params`: trainable parameter count;
- :mod:`evaluators.latency`: measured inference latency (median, p90);
- :mod:`evaluators.cost`: cached MFLOPs + params of a genotype, training-memory estimate;
- :mod:`evaluators.proxy`: the scratch proxy: a candidate trained briefly on a carved subset;
- :mod:`evaluators.oneshot`: a candidate scored by a trained supernet's inherited weights.

Each takes a module or a genotype and returns numbers; none knows about Optuna or Ray.
Submodules are imported on demand (``from evaluators.flops import count_macs``).
"""
