"""``nas supernet train``: train the weight-sharing supernet of a space (resumable).

    nas supernet train --space mdconv --out results/supernet-mdconv --epochs 2
    nas supernet score results/supernet-mdconv "stem c16 s1 | ds k3 c8 | ..."
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.errors import NasInputError


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    from nas.supernet.folder import OneShotConfig

    d = OneShotConfig()
    parser = sub.add_parser("supernet", help="train a weight-sharing supernet, score genotypes by inherited weights",
                            description="Train the supernet of a space with the sandwich rule (largest, smallest and "
                            "random subnets per step, in-place distillation); a killed training resumes from its "
                            "checkpoint. Score genotypes with it (BN recalibrated per subnet).")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    train = verbs.add_parser("train", help="train (or resume) a supernet into a folder")
    train.add_argument("--space", default=d.space, help="built-in space name or .toml path (default %(default)s)")
    train.add_argument("--out", type=Path, help="supernet folder (default results/supernet-SPACE)")
    train.add_argument("--dataset", default=d.dataset)
    train.add_argument("--data-dir")
    train.add_argument("--epochs", type=int, default=d.epochs)
    train.add_argument("--train-size", type=int, default=d.train_size, help="TRAIN images to use (0: all but validation)")
    train.add_argument("--val-size", type=int, default=d.val_size)
    train.add_argument("--resolution", type=int, default=d.resolution, help="train and score at this size (0: full size)")
    train.add_argument("--batch-size", type=int, default=d.batch_size)
    train.add_argument("--lr", type=float, default=d.lr, help="per 256 images")
    train.add_argument("--random-subnets", type=int, default=d.random_subnets, help="random subnets per step, besides the largest and smallest")
    train.add_argument("--distill", type=float, default=d.distill, help="weight of in-place distillation for the non-largest subnets (0..1)")
    train.add_argument("--kernel", choices=("centre", "transform"), default=d.kernel,
                       help="a k-group's kernel: the centre of the shared one, or OFA's learned transform of it")
    train.add_argument("--seed", type=int, default=d.seed)
    train.add_argument("--device", default="auto")
    train.add_argument("--threads", type=int, help="torch threads (per worker with --workers; default: torch's, 1 per worker)")
    train.add_argument("--workers", type=int, default=1,
                       help="data-parallel Ray Train workers (DDP over CPU processes, or one GPU each; default 1: no Ray)")
    train.add_argument("--address", help="with --workers: an existing Ray cluster (the folder must be on shared storage)")
    train.set_defaults(run=run_train)
    scoring = verbs.add_parser("score", help="score genotypes by the inherited weights of a trained supernet")
    scoring.add_argument("folder", type=Path)
    scoring.add_argument("genotype", nargs="+")
    scoring.add_argument("--device", default="auto")
    scoring.set_defaults(run=run_score)
    return parser


def run_train(args: argparse.Namespace) -> int:
    import nas
    from nas.supernet.folder import OneShotConfig, default_folder
    from nas.supernet.lifecycle import train_supernet

    nas.load_space(args.space)  # a bad space fails here, before any data is read
    config = OneShotConfig(space=args.space, dataset=args.dataset, data_dir=args.data_dir, train_size=args.train_size,
                           val_size=args.val_size, resolution=args.resolution or None, epochs=args.epochs,
                           batch_size=args.batch_size, lr=args.lr, random_subnets=args.random_subnets,
                           distill=args.distill, seed=args.seed, kernel=args.kernel)
    out = args.out or default_folder(args.space)
    if args.workers < 1:
        raise NasInputError(f"--workers must be >= 1, got {args.workers}")
    supernet = train_supernet(config, out, device=args.device, threads=args.threads, workers=args.workers,
                              address=args.address)
    print(f"{out}: supernet of {config.space} trained ({sum(p.numel() for p in supernet.parameters()):,} shared weights)")
    return 0


def run_score(args: argparse.Namespace) -> int:
    from evaluators.oneshot import OneShotScorer
    from nas.genotype import Arch

    scorer = OneShotScorer.from_folder(args.folder, device=args.device)
    for text in args.genotype:
        arch = Arch.parse(text)
        print(f"{scorer.score(arch):.4f}  {arch}")
    return 0
