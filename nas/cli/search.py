"""``nas search``: run (or resume) a multi-objective architecture search; see nas.search.driver.

Every option defaults to "not given" (None): a new run then takes the engine's default
(nas.search.settings, nas.search.fidelity), a resumed run what its config.json records.
On ``--resume`` the resources and the budget may be given anew; an option that would change
what the run searches is refused, naming it.
"""

from __future__ import annotations

import argparse
import sys

from nas.errors import NasInputError


def _positive_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """The ``search`` sub-command: one ``add_argument`` per option, in the groups ``--help`` shows
    (long by nature: a list of declarations, no logic)."""
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
    what.add_argument("--dataset", default=None, help="fashion-mnist (default), mnist, digits, cifar10, imagefolder")
    what.add_argument("--data-dir", default=None, help="where the dataset's files are (default: the dataset's usual place)")
    what.add_argument("--download", action="store_true",
                      help="download the dataset (checksum-verified) if it is not found locally")
    what.add_argument("--objectives", default=None,
                      help="accuracy plus one cost: mflops, params or latency (measured per trial); default accuracy,mflops")
    what.add_argument("--max-mflops", type=float, default=None, help="reject candidates above this many MFLOPs before training")
    what.add_argument("--max-params", type=int, default=None, help="reject candidates above this many parameters before training")
    what.add_argument("--sampler", default=None,
                      help="tpe, nsga2, nsga3 or random (default: tpe, picked by benchmarks/bench_samplers.py)")
    what.add_argument("--seed", type=int, default=None, help="seed of the sampler, data subset and proxy training (default 0)")

    fid = p.add_argument_group("fidelity (proxy training; unset: evaluators.proxy defaults, see docs/proxy.md)")
    fid.add_argument("--epochs", type=int, default=None, help="the proxy's epochs, the screening's full fidelity (default 3 with finals, 9 with --final-epochs 0)")
    fid.add_argument("--min-epochs", type=int, default=None, help="first successive-halving rung, in epochs (default 1)")
    fid.add_argument("--eta", type=_positive_float, default=None,
                     help="successive-halving factor: rungs at min*eta^k epochs, the top 1/eta continue (default 3; 0: off)")
    fid.add_argument("--promotion", choices=("budgeted", "asha"), default=None,
                     help="budgeted (default): a rung lets at most 1/eta of its trials continue, those on its "
                          "front always; asha: every trial ranked in the top 1/eta on arrival continues "
                          "(with an improving sampler that is most of them)")
    fid.add_argument("--train-size", type=int, default=None, help="proxy training images (from the TRAIN split)")
    fid.add_argument("--val-size", type=int, default=None, help="proxy validation images (held out of the TRAIN split)")
    fid.add_argument("--batch-size", type=int, default=None, help="proxy batch size")
    fid.add_argument("--lr", type=_positive_float, default=None, help="proxy learning rate (per 256 images)")
    fid.add_argument("--proxy", choices=("scratch", "supernet"), default=None,
                     help="scratch (default): each candidate trained from scratch; supernet: scored by the "
                          "inherited weights of a supernet (trained first unless --supernet gives one), higher "
                          "rungs fine-tune from them")
    fid.add_argument("--supernet", default=None, metavar="DIR",
                     help="a trained supernet folder (nas supernet train); default with --proxy supernet: "
                          "results/supernet-SPACE, trained first if it is not there")
    fid.add_argument("--screen-size", type=int, default=None, metavar="N",
                     help="with --proxy supernet: score every candidate first on N held-out images after a short "
                          "BN recalibration, and only those successive halving promotes on all of them "
                          "(default 1000; 0: one full score each)")
    fid.add_argument("--final-epochs", type=int, default=None, metavar="E",
                     help="the finals: once the screening has trained its budget, --finalists candidates chosen "
                          "across 3 cost tiers train for real, E epochs from scratch on all the search's training "
                          "images at full size, and that decides the front (default 1; 0: no finals, the proxy decides)")
    fid.add_argument("--finalists", type=int, default=None, metavar="K",
                     help="candidates the finals train for real (default 15: 5 per cost tier)")
    fid.add_argument("--finalists-by", default=None, choices=("screening", "cost"),
                     help="how each cost tier's finalists are chosen: 'screening' - the best residuals above the "
                          "screening's cost curve (default); 'cost' - evenly spaced in cost among every screened "
                          "candidate, the proxy's ranking unused")
    fid.add_argument("--proxy-resolution", type=int, default=None, metavar="PX",
                     help="square size the proxy trains at, images shrunk, never enlarged (default 14; 0: the data's own size)")

    out = p.add_argument_group("where and how")
    out.add_argument("--out", default=None, help="folder that receives the run folder (default results/)")
    out.add_argument("--name", default=None, help="run folder name (default: <space>-<dataset>-<date-time>)")
    out.add_argument("--resume", metavar="RUN", default=None,
                     help="continue the run folder RUN to its budget (settings from its config.json; "
                     "--budget may raise the budget; --cpus-per-trial, --gpus-per-trial, --address, --num-cpus override)")
    out.add_argument("--cpus-per-trial", type=_positive_float, default=None, help="CPUs per trial (fractions allowed; default 1)")
    out.add_argument("--gpus-per-trial", type=_positive_float, default=None, help="GPUs per trial (fractions allowed; default 0)")
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
                     help="Optuna RDB storage URL instead of the run's study.db (e.g. postgresql://user@host/db; "
                     "the run folder records it without a password: give that with PGPASSWORD or ~/.pgpass, or "
                     "with --resume give the same URL again)")
    out.add_argument("--status-interval", type=_positive_float, default=None,
                     help="seconds between status lines when stderr is not a terminal (default 30)")
    out.add_argument("--verbose", action="store_true", help="show Ray's and Optuna's own output")
    p.set_defaults(run=run)
    return p


# What a run searches: fixed by its config.json, refused with --resume. (option dest -> flag)
# --storage is not among them: with --resume it may name the run's own storage again, to give the
# password config.json leaves out (checked in nas.search.prepare).
RUN_DEFINING = {
    "space": "--space", "dataset": "--dataset", "data_dir": "--data-dir", "objectives": "--objectives",
    "max_mflops": "--max-mflops", "max_params": "--max-params", "sampler": "--sampler", "seed": "--seed",
    "name": "--name", "trial_memory": "--trial-memory",
    "trial_cpu_limit": "--trial-cpu-limit", **{dest: "--" + dest.replace("_", "-") for dest in (
        "epochs", "min_epochs", "eta", "promotion", "train_size", "val_size", "batch_size", "lr", "final_epochs", "finalists", "finalists_by", "screen_size")},
    "proxy_resolution": "--proxy-resolution", "proxy": "--proxy", "supernet": "--supernet",
}
# Settings taken from the options when given (setting name -> option dest); the rest keep their default.
_SETTINGS = {
    "space": "space", "budget": "budget", "dataset": "dataset", "data_dir": "data_dir", "objectives": "objectives",
    "max_mflops": "max_mflops", "max_params": "max_params", "seed": "seed", "out": "out", "name": "name",
    "cpus_per_trial": "cpus_per_trial", "gpus_per_trial": "gpus_per_trial", "address": "address",
    "storage": "storage", "resume": "resume", "status_interval": "status_interval", "num_cpus": "num_cpus",
    "trial_memory_mb": "trial_memory", "trial_cpu_limit": "trial_cpu_limit",
}


def check_resume_options(args: argparse.Namespace) -> None:
    """With --resume, refuse every given option that would change what the run searches."""
    given = [flag for dest, flag in RUN_DEFINING.items() if getattr(args, dest) is not None]
    if given:
        raise NasInputError(f"--resume takes the search settings from the run's config.json; drop {', '.join(given)}")


def settings_from(args: argparse.Namespace):
    """(the SearchSettings the given options say, options not given keeping the settings' defaults;
    the :class:`nas.search.one_shot.SearchSupernet` of a one-shot search, else None)."""
    from nas.search.fidelity import Fidelity
    from nas.search.one_shot import choose_supernet
    from nas.search.settings import SearchSettings

    values = {name: getattr(args, dest) for name, dest in _SETTINGS.items() if getattr(args, dest) is not None}
    if args.sampler is not None:
        values["sampler"] = args.sampler.lower()
    supernet = None
    if not args.resume:  # a resumed run's fidelity is its config.json's
        supernet = choose_supernet(args.proxy, args.supernet, args.space, args.dataset, args.data_dir,
                                   args.proxy_resolution)
        options = {"epochs": args.epochs, "val_size": args.val_size, "resolution": args.proxy_resolution,
                   "screen_size": args.screen_size,
                   **(supernet.fidelity_options(args.epochs, args.val_size, args.screen_size) if supernet else {})}
        values["fidelity"] = Fidelity.from_options(
            min_epochs=args.min_epochs, eta=args.eta, train_size=args.train_size, batch_size=args.batch_size,
            lr=args.lr, promotion=args.promotion, supernet=str(supernet.folder.resolve()) if supernet else None,
            final_epochs=args.final_epochs, finalists=args.finalists, finalists_by=args.finalists_by, **options)
    return SearchSettings(download=args.download, verbose=args.verbose, **values), supernet


def run(args: argparse.Namespace) -> int:
    from nas.search.driver import run_search

    if args.resume:
        check_resume_options(args)
    settings, supernet = settings_from(args)
    if supernet is not None:
        supernet.train_unless_complete(settings, threads=int(args.num_cpus or 0) or None)
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
