"""Reliability contract, part 1: bad input through the real CLI (`python -m nas ...` subprocesses).

Every case of CASES (one table, ids are the case names) must end with exit code 2, a
one-line message on stderr naming the file, key, token or value (the case's needles), no
traceback, and nothing written to the existing run folder next to it (files and mtimes
of the whole output folder are compared before and after). The run is a real one: a
tiny `nas search` on digits (real Ray, real Optuna storage) made once for the module.

The cases run in a small thread pool (each is its own process) to keep the suite short.
"""

from __future__ import annotations

import gzip
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from test_search_e2e import TINY_SPACE, run_nas

pytestmark = pytest.mark.slow

BAD_GENOTYPE = "stem c8 s1 | zz k3 c8 | head c0"
GOOD_GENOTYPE = "stem c8 s1 | ds k3.5 c8 | head c0"
OTHER_GENOTYPE = "stem c8 s1 | ds k3 c12 | head c0"
# builds, but its last reflect-padded 7x7 conv meets a 2x2 map on digits' 8x8 images
TOO_DEEP_FOR_DIGITS = "stem c8 s2 | ir k7 e2 c8 s2 pad=reflect | ir k7 e2 c8 pad=reflect | head c0"


def _space(old: str, new: str) -> str:
    assert old in TINY_SPACE, old
    return TINY_SPACE.replace(old, new, 1)


# Bad space files: (name, text)
SPACES = {
    "malformed-toml": TINY_SPACE.replace("[input]", "[input", 1),
    "unknown-key": _space("stride = 1\n", "stride = 1\ncolour = \"red\"\n"),
    "wrong-type": _space("width = [8, 16]", "width = \"wide\""),
    "empty-choices": _space("width = [8, 16]", "width = []"),
    "even-kernel": _space("kernels = [[3], [3, 5]]", "kernels = [[3], [4]]"),
    "zero-kernel": _space("kernels = [[3], [3, 5]]", "kernels = [[0]]"),
    "negative-kernel": _space("kernels = [[3], [3, 5]]", "kernels = [[-3]]"),
    "too-many-groups": _space("kernels = [[3], [3, 5]]", "kernels = [[3, 5, 7, 9, 11]]"),
    "unknown-padding": _space("kernels = [[3], [3, 5]]", "kernels = [[3]]\npadding = \"mirror\""),
    "unknown-partition": _space("kernels = [[3], [3, 5]]", "kernels = [[3]]\npartition = \"fibonacci\""),
    "unknown-activation": _space("kernels = [[3], [3, 5]]", "kernels = [[3]]\nact = \"gelu7\""),
    "unknown-block-type": _space("type = \"ds\"", "type = \"conv9\""),
    "duplicate-key": _space("stride = 1\n", "stride = 1\nstride = 2\n"),
}


# what the message of each bad space must name besides the file (the key or token)
NEEDLES = {
    "malformed-toml": ["line"],
    "unknown-key": ["colour"],
    "wrong-type": ["width"],
    "empty-choices": ["width"],
    "even-kernel": ["kernel", "4"],
    "zero-kernel": ["kernel", "0"],
    "negative-kernel": ["kernel", "-3"],
    "too-many-groups": ["kernels", "groups"],
    "unknown-padding": ["padding", "mirror"],
    "unknown-partition": ["partition", "fibonacci"],
    "unknown-activation": ["act", "gelu7"],
    "unknown-block-type": ["type", "conv9"],
    "duplicate-key": ["stem.stride", "twice"],
}

def _search(ctx, *extra: str, dataset: str = "digits", budget: str = "2") -> list[str]:
    return ["search", "--space", ctx["space"], "--budget", budget, "--dataset", dataset, "--out", ctx["out"],
            "--name", "new", "--num-cpus", "2", *extra]


# THE TABLE: (id, ctx -> argv, needles that must appear in the one-line message)
CASES = [
    *[(f"space-{name}", (lambda n: lambda c: ["search", "--space", c[f"bad-{n}"], "--budget", "2",
                                              "--dataset", "digits", "--out", c["out"], "--name", "new"])(name),
       (lambda n: [f"{n}.toml", *NEEDLES[n]])(name)) for name in SPACES],
    ("space-is-a-directory", lambda c: ["search", "--space", c["dir-space"], "--budget", "2", "--dataset", "digits",
                                        "--out", c["out"], "--name", "new"], ["folder.toml", "directory"]),
    ("unknown-space-name", lambda c: ["search", "--space", "no-such-space", "--budget", "2", "--dataset", "digits",
                                      "--out", c["out"]], ["no-such-space"]),
    ("unknown-dataset", lambda c: _search(c, dataset="imagenet9"), ["imagenet9"]),
    ("unknown-sampler", lambda c: _search(c, "--sampler", "cmaes"), ["--sampler", "cmaes"]),
    ("unknown-objective", lambda c: _search(c, "--objectives", "accuracy,speed"), ["--objectives", "speed"]),
    ("budget-zero", lambda c: _search(c, budget="0"), ["--budget", "0"]),
    ("budget-negative", lambda c: _search(c, budget="-3"), ["--budget", "-3"]),
    ("proxy-resolution-bad", lambda c: _search(c, "--proxy-resolution", "2"), ["--proxy-resolution", "2"]),
    ("data-dir-missing", lambda c: _search(c, "--data-dir", c["tmp"] + "/no-such-dir", dataset="mnist"),
     ["no-such-dir", "does not exist"]),
    ("data-dir-empty", lambda c: _search(c, "--data-dir", c["empty"], dataset="mnist"), [os.sep + "empty", "not found"]),
    ("idx-truncated", lambda c: _search(c, "--data-dir", c["idx-truncated"], dataset="fashion-mnist"),
     ["train-images-idx3-ubyte", "truncated"]),
    ("idx-corrupted", lambda c: _search(c, "--data-dir", c["idx-corrupted"], dataset="fashion-mnist"),
     ["train-labels-idx1-ubyte"]),
    ("image-corrupted", lambda c: _search(c, "--data-dir", c["images"], dataset="imagefolder"), ["broken.png"]),
    ("out-under-a-file", lambda c: _search(c)[:-4] + ["--out", c["file"] + "/sub", "--name", "new"],
     ["--out", "file.txt"]),
    ("out-in-proc", lambda c: _search(c)[:-4] + ["--out", "/proc/nas-reliability", "--name", "new"],
     ["--out", "/proc/nas-reliability"]),
    ("run-exists", lambda c: _search(c)[:-4] + ["--out", c["out"], "--name", "run"], ["run", "--resume"]),
    ("resume-budget-below", lambda c: ["search", "--resume", c["run"], "--budget", "1"], ["--budget 1"]),
    ("resume-not-a-run", lambda c: ["search", "--resume", c["notrun"]], ["notrun"]),
    ("pareto-not-a-run", lambda c: ["pareto", c["notrun"]], ["notrun"]),
    ("retrain-not-a-run", lambda c: ["retrain", c["notrun"], "--epochs", "1"], ["notrun"]),
    ("export-not-a-run", lambda c: ["export", c["notrun"], "--pick", "s", "--out", c["tmp"] + "/exp"], ["notrun"]),
    ("retrain-bad-genotype", lambda c: ["retrain", "--arch", BAD_GENOTYPE, "--dataset", "digits", "--epochs", "1",
                                        "--out", c["out"]], ["zz"]),
    ("retrain-bad-genotype-in-run", lambda c: ["retrain", c["run"], "--arch", BAD_GENOTYPE, "--epochs", "1"], ["zz"]),
    ("export-bad-genotype", lambda c: ["export", c["run"], "--arch", BAD_GENOTYPE, "--out", c["tmp"] + "/exp"], ["zz"]),
    ("retrain-out-under-a-file", lambda c: ["retrain", "--arch", GOOD_GENOTYPE, "--dataset", "digits", "--epochs", "1",
                                            "--out", c["file"] + "/sub"], ["file.txt"]),
    ("export-too-deep-for-the-input", lambda c: ["export", "--arch", TOO_DEEP_FOR_DIGITS, "--untrained",
                                                 "--dataset", "digits", "--out", c["tmp"] + "/exp-deep"],
     ["conv_dw", "reflect padding", "2x2"]),
    ("export-weights-of-another-network", lambda c: ["export", "--picks-dir", c["picks-mismatch"], "--pick", "p",
                                                     "--out", c["tmp"] + "/exp-mismatch"],
     [os.path.join("picks-mismatch", "p", "weights.safetensors"), "do not fit"]),
    ("export-weights-file-deleted", lambda c: ["export", "--picks-dir", c["picks-deleted"], "--pick", "p",
                                               "--out", c["tmp"] + "/exp-deleted"],
     [os.path.join("picks-deleted", "p", "weights.safetensors"), "missing"]),
    ("export-weights-file-deleted-by-arch", lambda c: ["export", "--picks-dir", c["picks-deleted"], "--arch",
                                                       GOOD_GENOTYPE, "--out", c["tmp"] + "/exp-deleted"],
     [os.path.join("picks-deleted", "p", "weights.safetensors"), "missing"]),
    ("export-out-under-a-file", lambda c: ["export", "--arch", GOOD_GENOTYPE, "--untrained", "--dataset", "digits",
                                           "--out", c["file"] + "/sub"], ["file.txt"]),
    ("nothing-fits-in-memory", lambda c: ["search", "--space", c["huge"], "--budget", "2", "--dataset", "digits",
                                          "--trial-memory", "2000", "--out", c["out"], "--name", "new"], ["huge", "memory"]),
]

# a space whose every network needs far more memory than any machine has (built on the
# meta device only, never for real)
HUGE_SPACE = (_space("width = [8, 16]", "width = [4000, 4096]").replace('type = "ds"', 'type = "ir"\nexpansion = 16')
              .replace("depth = [1, 2]", "depth = [2, 3]"))  # within nas/limits.py; >= 0.5 G params each


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder``; files with (mtime, size). A folder's own mtime is left out:
    `--resume` proves the run folder writable with a temporary file, which leaves nothing."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else (0, 0)
            for p in sorted(folder.rglob("*"))}


def _write_inputs(tmp: Path) -> dict[str, str]:
    ctx = {"tmp": str(tmp)}
    spaces = tmp / "spaces"
    spaces.mkdir()
    for name, text in SPACES.items():
        (spaces / f"{name}.toml").write_text(text)
        ctx[f"bad-{name}"] = str(spaces / f"{name}.toml")
    (spaces / "huge.toml").write_text(HUGE_SPACE)
    ctx["huge"] = str(spaces / "huge.toml")
    (spaces / "folder.toml").mkdir()
    ctx["dir-space"] = str(spaces / "folder.toml")
    (tmp / "empty").mkdir()
    ctx["empty"] = str(tmp / "empty")
    (tmp / "notrun").mkdir()
    (tmp / "notrun" / "notes.txt").write_text("not a run\n")
    ctx["notrun"] = str(tmp / "notrun")
    (tmp / "file.txt").write_text("a regular file\n")
    ctx["file"] = str(tmp / "file.txt")
    # IDX folders: truncated gzip of the training images; a labels file with a bad magic number
    # (built from tiny valid IDX files so nothing large is read)
    import numpy as np

    def idx_bytes(arr: np.ndarray) -> bytes:
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        return header + arr.astype(np.uint8).tobytes()

    imgs, labels = np.zeros((20, 28, 28), np.uint8), np.arange(20, dtype=np.uint8) % 10
    for kind in ("idx-truncated", "idx-corrupted"):
        d = tmp / kind
        d.mkdir()
        for stem, arr in (("train-images-idx3-ubyte", imgs), ("train-labels-idx1-ubyte", labels),
                          ("t10k-images-idx3-ubyte", imgs), ("t10k-labels-idx1-ubyte", labels)):
            (d / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(arr)))
        ctx[kind] = str(d)
    whole = (tmp / "idx-truncated" / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp / "idx-truncated" / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    (tmp / "idx-corrupted" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x12\x34\x56\x78" + bytes(20)))
    # an image folder with one file that is not an image
    from PIL import Image

    for cls in ("a", "b"):
        (tmp / "images" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), color=i * 40).save(tmp / "images" / cls / f"{i}.png")
    (tmp / "images" / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 5)
    ctx["images"] = str(tmp / "images")
    return ctx


def _broken_picks(tmp: Path) -> dict[str, str]:
    """A real retrained pick, copied twice and broken: weights of another network (with a
    matching digest, as when a weights file is copied over with its metrics), a deleted weights file."""
    import json

    import nas
    from nas.export.weights import save_weights

    made = run_nas("retrain", "--arch", GOOD_GENOTYPE, "--name", "p", "--dataset", "digits", "--epochs", "1",
                   "--device", "cpu", "--threads", "1", "--out", str(tmp / "picks"), timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    mismatch, deleted = tmp / "picks-mismatch", tmp / "picks-deleted"
    shutil.copytree(tmp / "picks", mismatch)
    shutil.copytree(tmp / "picks", deleted)
    metrics_path = mismatch / "p" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    other = nas.build(OTHER_GENOTYPE, num_classes=10, in_chans=1).state_dict()
    metrics["weights_sha256"] = save_weights(other, mismatch / "p" / metrics["weights_file"])
    metrics_path.write_text(json.dumps(metrics))
    (deleted / "p" / metrics["weights_file"]).unlink()
    return {"picks-mismatch": str(mismatch), "picks-deleted": str(deleted)}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Make a real run, then run every case of the table against it; (ctx, {id: (proc, changed)})."""
    tmp = tmp_path_factory.mktemp("reliability-inputs")
    ctx = _write_inputs(tmp)
    out = tmp / "results"
    space = tmp / "tiny.toml"
    space.write_text(TINY_SPACE)
    made = run_nas("search", "--space", str(space), "--budget", "2", "--dataset", "digits", "--epochs", "1",
                   "--eta", "0", "--train-size", "100", "--val-size", "50", "--num-cpus", "2",
                   "--final-epochs", "0", "--out", str(out), "--name", "run")
    assert made.returncode == 0, made.stderr[-3000:]
    ctx.update(out=str(out), run=str(out / "run"), space=str(space))
    ctx.update(_broken_picks(tmp))

    def one(case):
        case_id, argv, _ = case
        before = _snapshot(out)
        proc = run_nas(*argv(ctx), timeout=360)
        after = _snapshot(out)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        return case_id, (proc, changed)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(pool.map(one, CASES))
    yield ctx, results
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("case_id,argv,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_exit_2_nothing_written(outcomes, case_id, argv, needles):
    ctx, results = outcomes
    proc, changed = results[case_id]
    err = proc.stderr.strip()
    assert proc.returncode == 2, (case_id, proc.returncode, err[-2000:])
    assert "Traceback" not in proc.stderr, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, (case_id, err)
    for needle in needles:
        assert needle in lines[0], (case_id, needle, lines[0])
    assert not changed, (case_id, changed)
    assert not (Path(ctx["out"]) / "new").exists()
    args = argv(ctx)
    if args[0] == "export":  # a failing export leaves no out folder behind
        assert not Path(args[args.index("--out") + 1]).exists(), case_id
