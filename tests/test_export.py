"""Export: generated model.py == engine model, in a fresh interpreter where `nas` cannot be imported."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import nas
from nas.errors import NasInputError
from nas.export.bundle import export_bundle, import_model_file, parse_formats, run_onnx
from nas.export.codegen import generate_model_source
from nas.export.weights import load_weights

# Together these cover: every padding mode (zeros, reflect, replicate, circular, partial),
# ds and ir blocks, SE, swish, dilation, down=max/avg, pw groups (even and uneven),
# exp partition, single-kernel and mixed depthwise convs, residuals, head c0 and head cN.
GENOTYPES = [
    "stem c8 | ds k3 c8 | head c0",
    "stem c16 act=swish | ds k3.5.7 c16 se0.25 pad=partial act=swish | "
    "ir k3.5 e3 c24 s2 g2.2 split=exp pad=reflect, ir k3 e2.5 c24 d2 pad=partial | head c64 act=swish",
    "stem c12 s1 | ir k3.5.7.9 e6 c20 s2 se0.5 split=exp pad=circular down=max, "
    "ir k5 e3 c20 g3.2 pad=replicate | ds k3.5 c24 s2 down=avg d2 | head c32",
    "stem c10 s1 | ir k3.5.7 e3 c15 d2 g3.3 split=exp pad=partial, ir k1.3 e1.5 c15 pad=partial se0.25 | "
    "ds k3 c16 s2 pad=partial down=max act=swish | head c24",
]
IMAGE = 12  # small input: border effects everywhere, fast


def _randomise(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics and affine params, so eval-mode outputs test every buffer."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("exports")
    out = []
    for i, genotype in enumerate(GENOTYPES):
        model = nas.build(genotype, num_classes=7, in_chans=2).eval()
        _randomise(model)
        d = root / f"net{i}"
        export_bundle(genotype, model.state_dict(), d, num_classes=7, in_chans=2, image_size=IMAGE,
                      mean=(0.5, 0.25), std=(0.2, 0.3), classes=[f"c{k}" for k in range(7)],
                      metrics={"test_accuracy": 0.5})
        x = torch.randn(3, 2, IMAGE, IMAGE)
        torch.save(x, d / "input.pt")
        with torch.no_grad():
            torch.save(model(x), d / "expected.pt")
        out.append((genotype, d, model))
    return out


def test_bundle_layout(exports):
    genotype, d, _ = exports[1]
    assert {p.name for p in d.iterdir()} >= {"model.py", "weights.safetensors", "genotype.txt", "metrics.json"}
    assert (d / "genotype.txt").read_text().strip() == str(nas.Arch.parse(genotype))
    m = json.loads((d / "metrics.json").read_text())
    assert m["test_accuracy"] == 0.5 and m["num_classes"] == 7 and m["in_chans"] == 2
    assert len(m["weights_sha256"]) == 64 and m["weights_file"] == "weights.safetensors"
    assert m["export"]["max_abs_diff_vs_engine"]["pytorch"] <= 1e-5


def test_model_py_is_readable_torch_only_code(exports):
    for genotype, d, _ in exports:
        source = (d / "model.py").read_text()
        tree = ast.parse(source)
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        # safetensors only inside the weights reader, lazily; nothing else outside torch + stdlib
        assert imported <= {"__future__", "hashlib", "os", "torch", "safetensors"}, imported
        top = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
               for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
        assert top <= {"__future__", "hashlib", "os", "torch", "torch.nn", "torch.nn.functional"}, top
        assert "Arch.parse" not in source and "split(" not in source.split("class Net")[1].split("def forward")[0]
    # literals, not an interpreter: the kernel list and exp split are written out
    src = (exports[2][1] / "model.py").read_text()
    assert "kernels=[3, 5, 7, 9]" in src and "MixConv2d([36, 18, 9, 9]" in src
    assert "down='max'" in src and "down='avg'" in src and "se_chs=6" in src
    src3 = (exports[3][1] / "model.py").read_text()
    assert "class PartialConv2d" in src3 and "depthwise=False" in src3  # g3.3 on 10 channels: uneven


def test_fresh_interpreter_without_nas_matches_engine(exports, tmp_path):
    script = textwrap.dedent(r'''
        import importlib.abc, sys
        class _Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("nas", "evaluators", "search_spaces"):
                    raise ImportError(f"blocked: {name}")
                return None
        sys.meta_path.insert(0, _Block())
        assert "nas" not in sys.modules
        try:
            import nas  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("nas is importable in the export test interpreter")
        import importlib.util, json, torch
        results = {}
        for d in sys.argv[1:]:
            spec = importlib.util.spec_from_file_location(f"m{len(results)}", d + "/model.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            net = mod.load_model()
            assert not net.training
            x = torch.load(d + "/input.pt", weights_only=True)
            with torch.no_grad():
                y = net(x)
            exp = torch.load(d + "/expected.pt", weights_only=True)
            results[d] = float((y - exp).abs().max())
            # the preprocess helper matches the training normaliser
            u = torch.randint(0, 256, (2, mod.IN_CHANS, 4, 4), dtype=torch.uint8)
            ref = (u.float() / 255 - torch.tensor(mod.MEAN).view(1, -1, 1, 1)) / torch.tensor(mod.STD).view(1, -1, 1, 1)
            assert torch.allclose(mod.preprocess(u), ref, atol=1e-5)
        print(json.dumps({"diffs": results, "nas_loaded": "nas" in sys.modules}))
    ''')
    (tmp_path / "check.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(exports[0][1])  # only an export folder
    proc = subprocess.run(
        [sys.executable, "-s", str(tmp_path / "check.py"), *[str(d) for _, d, _ in exports]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["nas_loaded"] is False
    assert len(report["diffs"]) == len(GENOTYPES)
    for d, diff in report["diffs"].items():
        assert diff <= 1e-5, (d, diff)


def test_generated_state_dict_matches_build_exactly():
    for genotype in GENOTYPES:
        engine = nas.build(genotype, num_classes=4, in_chans=3)
        module = type(sys)("gen")
        exec(compile(generate_model_source(genotype, 4, 3), "model.py", "exec"), module.__dict__)
        net = module.Net()
        a = {k: tuple(v.shape) for k, v in engine.state_dict().items()}
        b = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        assert a == b
        net.load_state_dict(engine.state_dict(), strict=True)
        # train mode too (BN batch statistics, partial ratios built outside inference mode)
        x = torch.randn(4, 3, 9, 9)
        engine.train()
        net.train()
        torch.testing.assert_close(net(x), engine(x), atol=1e-5, rtol=1e-5)


def test_tampered_and_truncated_weights_are_rejected(exports, tmp_path):
    _, d, _ = exports[1]
    meta = json.loads((d / "metrics.json").read_text())
    good = (d / "weights.safetensors").read_bytes()
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    for name in ("model.py", "metrics.json", "genotype.txt"):
        (bad_dir / name).write_bytes((d / name).read_bytes())
    module = import_model_file(bad_dir / "model.py")
    tampered = bytearray(good)
    tampered[-5] ^= 0x01
    for label, data in (("tampered", bytes(tampered)), ("truncated", good[: len(good) // 2])):
        (bad_dir / "weights.safetensors").write_bytes(data)
        with pytest.raises(NasInputError, match="SHA-256"):
            load_weights(bad_dir / "weights.safetensors", meta["weights_sha256"])
        with pytest.raises(module.WeightsError, match="SHA-256"):
            module.load_model()
    # without a digest, a truncated file is still refused with a clear message
    (bad_dir / "weights.safetensors").write_bytes(good[:100])
    with pytest.raises(NasInputError, match="unreadable weights"):
        load_weights(bad_dir / "weights.safetensors")
    with pytest.raises(module.WeightsError, match="unreadable"):
        module.load_model(str(bad_dir / "weights.safetensors"), sha256=None)
    # the right file with the right digest loads, and gives the source model's outputs
    (bad_dir / "weights.safetensors").write_bytes(good)
    net = module.load_model()
    x = torch.load(d / "input.pt", weights_only=True)
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.load(d / "expected.pt", weights_only=True), atol=1e-5, rtol=1e-5)


def test_weights_that_do_not_fit_are_an_input_error(tmp_path):
    other = nas.build("stem c8 | ds k3 c12 | head c0", num_classes=7, in_chans=2).state_dict()
    with pytest.raises(NasInputError, match="do not fit"):
        export_bundle(GENOTYPES[0], other, tmp_path / "x", num_classes=7, in_chans=2, image_size=8)


# builds, but its last reflect-padded 7x7 conv meets a 2x2 map on 8x8 inputs (digits)
TOO_DEEP_FOR_8PX = "stem c8 s2 | ir k7 e2 c8 s2 pad=reflect | ir k7 e2 c8 pad=reflect | head c0"


def _snapshot(folder):
    """Every file under ``folder`` with its bytes and mtime."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failing_export_writes_nothing(tmp_path):
    """The architecture fails on the input size: no out folder, nothing beside it."""
    state = nas.build(TOO_DEEP_FOR_8PX, num_classes=10, in_chans=1).state_dict()
    out = tmp_path / "exports" / "net"
    with pytest.raises(NasInputError, match="reflect padding"):
        export_bundle(TOO_DEEP_FOR_8PX, state, out, num_classes=10, in_chans=1, image_size=8)
    assert not out.exists()
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())


def test_a_failing_export_leaves_an_earlier_export_unchanged(tmp_path):
    out = tmp_path / "net"
    model = nas.build(GENOTYPES[0], num_classes=10, in_chans=1).eval()
    export_bundle(GENOTYPES[0], model.state_dict(), out, num_classes=10, in_chans=1, image_size=8)
    (out / "notes.txt").write_text("the user's own file\n")
    before = _snapshot(out)
    bad = nas.build(TOO_DEEP_FOR_8PX, num_classes=10, in_chans=1).state_dict()
    with pytest.raises(NasInputError, match="reflect padding"):
        export_bundle(TOO_DEEP_FOR_8PX, bad, out, num_classes=10, in_chans=1, image_size=8)
    with pytest.raises(NasInputError, match="do not fit"):  # the weights of another network
        export_bundle(GENOTYPES[0], bad, out, num_classes=10, in_chans=1, image_size=8)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net"]  # no staging folder left


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_re_export_replaces_the_bundle_and_drops_its_stale_files(tmp_path):
    out = tmp_path / "net"
    model = nas.build(GENOTYPES[0], num_classes=10, in_chans=1).eval()
    export_bundle(GENOTYPES[0], model.state_dict(), out, num_classes=10, in_chans=1, image_size=8,
                  formats=["torchscript"])
    (out / "notes.txt").write_text("kept\n")
    other = nas.build(GENOTYPES[2], num_classes=10, in_chans=1).eval()
    res = export_bundle(GENOTYPES[2], other.state_dict(), out, num_classes=10, in_chans=1, image_size=8)
    assert sorted(p.name for p in out.iterdir()) == sorted(res.files + ["notes.txt"])  # no model.torchscript.pt
    assert (out / "genotype.txt").read_text().strip() == str(nas.Arch.parse(GENOTYPES[2]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net"]


def test_cli_export_failing_on_the_architecture_leaves_out_absent_or_unchanged(tmp_path):
    from test_search_e2e import run_nas

    fresh = tmp_path / "fresh"
    proc = run_nas("export", "--arch", TOO_DEEP_FOR_8PX, "--untrained", "--dataset", "digits", "--out", str(fresh),
                   timeout=180)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "reflect padding" in proc.stderr
    assert not fresh.exists()
    earlier = tmp_path / "earlier"
    ok = run_nas("export", "--arch", GENOTYPES[0], "--untrained", "--dataset", "digits", "--out", str(earlier),
                 timeout=180)
    assert ok.returncode == 0, ok.stderr[-2000:]
    before = _snapshot(earlier)
    proc = run_nas("export", "--arch", TOO_DEEP_FOR_8PX, "--untrained", "--dataset", "digits", "--out", str(earlier),
                   timeout=180)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert _snapshot(earlier) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_and_torchscript(tmp_path):
    genotype = GENOTYPES[1]
    model = nas.build(genotype, num_classes=5, in_chans=1).eval()
    _randomise(model)
    res = export_bundle(genotype, model.state_dict(), tmp_path, num_classes=5, in_chans=1, image_size=16,
                        formats=["torchscript", "onnx"])
    assert {"model.onnx", "model.torchscript.pt"} <= set(res.files)
    import onnx

    graph = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(graph, full_check=True)
    x = torch.randn(3, 1, 16, 16)  # another batch size than the export's: the batch axis is dynamic
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(run_onnx(tmp_path / "model.onnx", x), expected, atol=1e-4, rtol=1e-4)
    ts = torch.jit.load(str(tmp_path / "model.torchscript.pt"))
    torch.testing.assert_close(ts(x), expected, atol=1e-5, rtol=1e-5)


def test_parse_formats():
    assert parse_formats("onnx, ts") == ["pytorch", "onnx", "torchscript"]
    with pytest.raises(NasInputError, match="tflite"):
        parse_formats("tflite")


def test_plain_state_dict_weights_without_safetensors(tmp_path):
    """weights.pt (what an export writes without safetensors) loads with weights_only=True."""
    from nas.export.weights import save_weights

    genotype = GENOTYPES[0]
    model = nas.build(genotype, num_classes=3, in_chans=1).eval()
    digest = save_weights(model.state_dict(), tmp_path / "weights.pt")
    assert load_weights(tmp_path / "weights.pt", digest).keys() == model.state_dict().keys()
    src = generate_model_source(genotype, 3, 1, image_size=8, weights_file="weights.pt", weights_sha256=digest)
    (tmp_path / "model.py").write_text(src)
    module = import_model_file(tmp_path / "model.py")
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(module.load_model()(x), model(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("space,seeds", [("mdconv", range(4)), ("dilated", range(3)), ("mixnet-s", [0])])
def test_generated_code_matches_engine_on_space_samples(space, seeds):
    for seed in seeds:
        arch = nas.load_space(space).sample(seed)
        engine = nas.build(arch, num_classes=10, in_chans=1).eval()
        _randomise(engine)
        module = type(sys)("gen")
        exec(compile(generate_model_source(arch, 10, 1), "model.py", "exec"), module.__dict__)
        net = module.Net().eval()
        net.load_state_dict(engine.state_dict(), strict=True)
        x = torch.randn(2, 1, 28, 28)
        with torch.no_grad():
            torch.testing.assert_close(net(x), engine(x), atol=1e-5, rtol=1e-5, msg=lambda m: f"{arch}: {m}")
