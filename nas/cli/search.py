"""``nas search``: run (or resume) a multi-objective architecture search; see nas.search.driver."""

from __future__ import annotations

import argparse
import sys


def _positive_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "search",
        help="search a space for the accuracy/cost Pareto front (writes results/<run>/)",
        description=(
            "Search a space with Ray Tune running the trials and an Optuna sampler behind it; "
            "multi-objective successive halving stops dominated candidates early. Leaves "
            "results/<run>/ with study.db, config.json, trials.csv, pareto.csv, pareto.png "
            "and prints the Pareto front. The budget counts trained candidates (complete, "
            "stopped early, or failed while training); candidates rejected by --max-mflops/"
            "--max-params cost no training and do not count."
        ),
    )
    what = p.add_argument_group("what to search")
    what.add_argument("--space", help="built-in space name (see `nas spaces`) or a .toml space file")
    what.add_argument("--budget", type=int, help="number of candidates to train (required unless --resume)")
    what.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist (default), mnist, digits, cifar10, imagefolder")
    what.add_argument("--data-dir", default=None, help="where the dataset's files are (default: the dataset's usual place)")
    what.add_argument("--download", action="store_true",
                      help="download the dataset (checksum-verified) if it is not found locally")
    what.add_argument("--objectives", default="accuracy,mflops",
                      help="accuracy plus one cost: mflops, params or latency (measured per trial); default accuracy,mflops")
    what.add_argument("--max-mflops", type=float, default=None, help="reject candidates above this many MFLOPs before training")
    what.add_argument("--max-params", type=int, default=None, help="reject candidates above this many parameters before training")
    what.add_argument("--sampler", default=None,
                      help="tpe, nsga2, nsga3 or random (default: tpe, picked by benchmarks/bench_samplers.py)")
    what.add_argument("--seed", type=int, default=0, help="seed of the sampler, data subset and proxy training (default 0)")

    fid = p.add_argument_group("fidelity (proxy training; unset: evaluators.proxy defaults, see docs/proxy.md)")
    fid.add_argument("--epochs", type=int, default=None, help="full fidelity: epochs of a fully trained candidate")
    fid.add_argument("--min-epochs", type=int, default=1, help="first successive-halving rung, in epochs (default 1)")
    fid.add_argument("--eta", type=_positive_float, default=3.0,
                     help="successive-halving factor: rungs at min*eta^k epochs, the top 1/eta continue (default 3; 0: off)")
    fid.add_argument("--promotion", choices=("budgeted", "asha"), default=None,
                     help="budgeted (default): a rung lets at most 1/eta of its trials continue, those on its "
                          "front always; asha: every trial ranked in the top 1/eta on arrival continues "
                          "(with an improving sampler that is most of them)")
    fid.add_argument("--train-size", type=int, default=None, help="proxy training images (from the TRAIN split)")
    fid.add_argument("--val-size", type=int, default=None, help="proxy validation images (held out of the TRAIN split)")
    fid.add_argument("--batch-size", type=int, default=None, help="proxy batch size")
    fid.add_argument("--lr", type=_positive_float, default=None, help="proxy learning rate (per 256 images)")
    fid.add_argument("--proxy-resolution", type=int, default=None, metavar="PX",
                     help="square size the proxy trains at, images shrunk, never enlarged (default 14; 0: the data's own size)")

    out = p.add_argument_group("where and how")
    out.add_argument("--out", default="results", help="folder that receives the run folder (default results/)")
    out.add_argument("--name", default=None, help="run folder name (default: <space>-<dataset>-<date-time>)")
    out.add_argument("--resume", metavar="RUN", default=None,
                     help="continue the run folder RUN to its budget (settings from its config.json; "
                     "--budget may raise the budget, resources may change)")
    out.add_argument("--cpus-per-trial", type=_positive_float, default=1.0, help="CPUs per trial (fractions allowed; default 1)")
    out.add_argument("--gpus-per-trial", type=_positive_float, default=0.0, help="GPUs per trial (fractions allowed; default 0)")
    out.add_argument("--num-cpus", type=int, default=None,
                     help="CPUs the local Ray may use (default: all cores; ignored with --address)")
    out.add_argument("--trial-memory", type=_positive_float, default=None, metavar="MB",
                     help="memory one trial may use: candidates whose estimated training memory exceeds it are "
                     "rejected before training (default: available memory / trials running at once)")
    out.add_argument("--trial-cpu-limit", type=_positive_float, default=None, metavar="SECONDS",
                     help="CPU seconds one trial may use; past it its worker is stopped (RLIMIT_CPU) and the "
                     "trial recorded as failed (default: no limit)")
    out.add_argument("--address", default=None, help="existing Ray cluster to use (ray.init(address=...)); default: local Ray")
    out.add_argument("--storage", default=None,
                     help="Optuna RDB storage URL instead of the run's study.db (e.g. postgresql://...)")
    out.add_argument("--status-interval", type=_positive_float, default=30.0,
                     help="seconds between status lines when stderr is not a terminal (default 30)")
    out.add_argument("--verbose", action="store_true", help="show Ray's and Optuna's own output")
    p.set_defaults(run=run)
    return p


_SEARCH_ONLY = ("space", "dataset", "data_dir", "objectives", "max_mflops", "max_params", "sampler", "epochs",
                "train_size", "val_size", "batch_size", "lr", "storage", "name",
                "proxy_resolution", "promotion", "trial_memory", "trial_cpu_limit")


def run(args: argparse.Namespace) -> int:
    from nas.errors import NasInputError
    from nas.search.driver import DEFAULT_SAMPLER, Fidelity, SearchSettings, run_search

    defaults = {"dataset": "fashion-mnist", "objectives": "accuracy,mflops", "seed": 0}
    if args.resume:
        given = [k for k in _SEARCH_ONLY if getattr(args, k) not in (None, defaults.get(k))]
        if args.seed != 0:
            given.append("seed")
        if args.min_epochs != 1 or args.eta != 3.0:
            given.append("min_epochs/eta")
        if given:
            flags = ", ".join("--" + g.replace("_", "-") for g in given)
            raise NasInputError(f"--resume takes the search settings from the run's config.json; drop {flags}")
    settings = SearchSettings(
        space=args.space,
        budget=args.budget,
        dataset=args.dataset,
        data_dir=args.data_dir,
        download=args.download,
        objectives=args.objectives,
        max_mflops=args.max_mflops,
        max_params=args.max_params,
        sampler=(args.sampler or DEFAULT_SAMPLER).lower(),
        seed=args.seed,
        out=args.out,
        name=args.name,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        address=args.address,
        storage=args.storage,
        fidelity=Fidelity(epochs=args.epochs, min_epochs=args.min_epochs, eta=args.eta, train_size=args.train_size,
                          val_size=args.val_size, batch_size=args.batch_size, lr=args.lr,
                          resolution=args.proxy_resolution, promotion=args.promotion or Fidelity.promotion),
        resume=args.resume,
        verbose=args.verbose,
        status_interval=args.status_interval,
        num_cpus=args.num_cpus,
        trial_memory_mb=args.trial_memory,
        trial_cpu_limit=args.trial_cpu_limit,
    )
    outcome = run_search(settings)
    from nas.cli.pareto import print_front

    print(f"run: {outcome.path}  ({outcome.done}/{outcome.budget} candidates trained)")
    if outcome.failures:
        n = sum(c for _, c in outcome.failures)
        why = "; ".join(f"{c}x {reason}" for reason, c in outcome.failures[:5])
        print(f"failed: {n} of {outcome.done} trained candidates ({why})")
    if outcome.stop_reason:
        print(f"note: {outcome.stop_reason}", file=sys.stderr)
    print_front(outcome.front, outcome.path)
    if outcome.interrupted:
        print(f"nas search: interrupted; continue with: nas search --resume {outcome.path}", file=sys.stderr)
        return 130
    return 0
