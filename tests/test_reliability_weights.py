"""Reliability contract, part 3: weights. Retraining is reproducible on CPU, exported and retrained
weights are read without executing pickled code, and a tampered weights file is refused with a
clear message by the engine (`nas export`) and by the generated, standalone model.py.
All through real `python -m nas` processes on digits (no Ray)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_search_e2e import _env, run_nas

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ARCH = "stem c8 s1 | ds k3.5 c8 pad=partial, ir k3 e2 c12 s2 se0.25 act=swish | head c16"


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """The same genotype retrained twice, same seed, one CPU thread: two pick folders."""
    root = tmp_path_factory.mktemp("retrain")
    outs = []
    for i in (1, 2):
        out = root / f"r{i}"
        proc = run_nas("retrain", "--arch", ARCH, "--name", "p", "--dataset", "digits", "--epochs", "1",
                       "--device", "cpu", "--threads", "1", "--seed", "3", "--out", str(out), timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(out)
    return outs


def test_retrain_same_genotype_same_seed_gives_identical_weights(retrained):
    from safetensors.torch import load_file

    a, b = (o / "p" / "weights.safetensors" for o in retrained)
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys() and ta
    for k in ta:
        assert ta[k].equal(tb[k]), k
    # the files too, so the pick's recorded digest is reproducible
    assert a.read_bytes() == b.read_bytes()
    digests = [json.loads((o / "p" / "metrics.json").read_text())["weights_sha256"] for o in retrained]
    assert digests[0] == digests[1]


WRITE_WEIGHTS = """
import sys, torch
from nas.export.weights import save_weights
g = torch.Generator().manual_seed(0)
# insertion order differs from the sorted one on purpose
state = {name: torch.randn(3, 4, generator=g) for name in ("head.weight", "blocks.0.bn.bias", "stem.conv.weight")}
state["blocks.0.bn.num_batches_tracked"] = torch.tensor(7)
metadata = {key: "value-" + key for key in ("genotype", "format", "seed", "dataset", "epochs", "nas", "torch", "z")}
print(save_weights(state, sys.argv[1], metadata=metadata))
"""


def test_same_tensors_give_the_same_bytes_in_every_process(tmp_path):
    """safetensors writes its metadata map in a per-process order; nas's weights files must not."""
    from safetensors import safe_open

    paths, digests = [], []
    for hash_seed in ("1", "2", "3"):
        path = tmp_path / f"w{hash_seed}.safetensors"
        env = {**_env(), "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run([sys.executable, "-c", WRITE_WEIGHTS, str(path)], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        paths.append(path)
        digests.append(proc.stdout.strip())
    data = [p.read_bytes() for p in paths]
    assert data[0] == data[1] == data[2]
    assert len(set(digests)) == 1
    # still a valid safetensors file with the tensors and metadata written
    with safe_open(str(paths[0]), framework="pt") as f:
        assert f.metadata()["genotype"] == "value-genotype" and len(f.metadata()) == 8
        assert sorted(f.keys()) == ["blocks.0.bn.bias", "blocks.0.bn.num_batches_tracked", "head.weight",
                                    "stem.conv.weight"]
        assert int(f.get_tensor("blocks.0.bn.num_batches_tracked")) == 7


def _torch_load_calls(tree: ast.AST) -> list[ast.Call]:
    """The calls of ``torch.load`` in a module, however it is reached (``torch.load``, ``import torch as t``,
    ``from torch import load as f``); comments and docstrings are not code."""
    modules, functions = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "torch"}
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            functions |= {a.asname or a.name for a in node.names if a.name == "load"}

    def is_torch_load(func: ast.expr) -> bool:
        if isinstance(func, ast.Attribute):
            return func.attr == "load" and isinstance(func.value, ast.Name) and func.value.id in modules
        return isinstance(func, ast.Name) and func.id in functions

    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and is_torch_load(n.func)]


def _imported_modules(tree: ast.AST) -> set[str]:
    """The top-level names of the modules a module imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_plain_pickle_loading_of_weights():
    """Every torch.load in the engine passes weights_only=True; no pickle in export/retrain/training."""
    files = [*sorted((ROOT / "nas" / "export").glob("*.py")), *sorted((ROOT / "nas" / "training").glob("*.py")),
             ROOT / "nas" / "retrain.py",
             ROOT / "nas" / "cli" / "export.py", ROOT / "nas" / "cli" / "retrain.py"]
    n_calls = 0
    for path in sorted((ROOT / "nas").rglob("*.py")):
        for call in _torch_load_calls(ast.parse(path.read_text(), str(path))):
            n_calls += 1
            weights_only = [k.value for k in call.keywords if k.arg == "weights_only"]
            safe = len(weights_only) == 1 and isinstance(weights_only[0], ast.Constant) and weights_only[0].value is True
            assert safe, f"{path}:{call.lineno}: {ast.unparse(call)}"
    assert n_calls, "no torch.load found: the check looks at nothing"
    for path in files:
        imported = _imported_modules(ast.parse(path.read_text(), str(path)))
        assert not imported & {"pickle", "dill", "joblib", "cloudpickle"}, path


def test_tampered_weights_are_refused_by_engine_and_model_py(retrained, tmp_path):
    picks = retrained[0]
    export = tmp_path / "export"
    proc = run_nas("export", "--arch", ARCH, "--picks-dir", str(picks), "--out", str(export), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = next(export.glob("weights.*"))
    assert weights.suffix == ".safetensors"
    # the generated model.py loads the right file (and nothing from nas)
    ok = subprocess.run([sys.executable, str(export / "model.py")], capture_output=True, text=True, env=_env(),
                        cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr[-2000:]

    # tamper: one byte of the retrained pick's weights, and of the exported weights
    for path in (picks / "p" / "weights.safetensors", weights):
        data = bytearray(path.read_bytes())
        data[-3] ^= 0x01
        path.write_bytes(bytes(data))
    bad = run_nas("export", "--arch", ARCH, "--picks-dir", str(picks), "--out", str(tmp_path / "again"), timeout=180)
    assert bad.returncode == 2, bad.stderr[-2000:]
    assert "Traceback" not in bad.stderr and "SHA-256" in bad.stderr and "weights.safetensors" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    mod = subprocess.run([sys.executable, str(export / "model.py")], capture_output=True, text=True, env=_env(),
                         cwd=tmp_path, timeout=120)
    assert mod.returncode != 0
    assert "SHA-256" in mod.stderr and "Traceback" not in mod.stderr, mod.stderr[-2000:]
    meta = json.loads((export / "metrics.json").read_text())
    assert f"expected {meta['weights_sha256'][:12]}..." in mod.stderr, mod.stderr[-2000:]  # names the recorded digest
