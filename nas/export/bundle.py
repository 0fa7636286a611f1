"""``export_bundle``: write a standalone model folder from a genotype and its weights.

Layout of the folder (``nas export ... --out DIR``)::

    model.py              torch-only network code + load_model() / preprocess()
    weights.safetensors   the trained weights (weights.pt if safetensors is missing)
    genotype.txt          the genotype, one line
    metrics.json          the pick's metrics + export info (weights_sha256, input, classes)
    model.torchscript.pt  with --format torchscript (traced at the training input size)
    model.onnx            with --format onnx (opset 17, dynamic batch)

Every export is checked before it is reported done: the generated ``Net`` must load
the engine's weights with ``strict=True`` and give the engine model's outputs on a
random input (eval mode); TorchScript and ONNX files are checked the same way
(ONNX with onnxruntime if importable, else onnx's checker + reference evaluator).
The folder is built beside ``--out`` and moved in only once every check passed: a failing
export leaves ``--out`` absent or as it was.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from nas import __version__ as nas_version
from nas.atomic import atomic_target, staged_folder
from nas.builder import build
from nas.errors import NasInputError
from nas.export.codegen import generate_model_source
from nas.export.weights import load_state_strict, make_shareable, save_weights, weights_filename
from nas.genotype import Arch
from nas.runs.pick_folders import METRICS_FILE, metrics_text

FORMATS = ("pytorch", "torchscript", "onnx")
TORCHSCRIPT_FILE = "model.torchscript.pt"
ONNX_FILE = "model.onnx"
ATOL = 1e-4
#: every file an export may write: the ones a new export does not write are an earlier export's
BUNDLE_FILES = ("model.py", "weights.safetensors", "weights.pt", "genotype.txt", "metrics.json",
                TORCHSCRIPT_FILE, ONNX_FILE)


@dataclass
class ExportResult:
    out_dir: Path
    files: list[str] = field(default_factory=list)
    max_abs_diff: dict[str, float] = field(default_factory=dict)


def parse_formats(text: str | Sequence[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text)
    out = ["pytorch"]
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        item = {"ts": "torchscript", "jit": "torchscript", "torch": "pytorch", "py": "pytorch"}.get(item, item)
        if item not in FORMATS:
            raise NasInputError(f"--format: unknown format {item!r}; expected any of {', '.join(FORMATS)}")
        if item not in out:
            out.append(item)
    return out


def import_model_file(path: str | Path):
    """Import a generated ``model.py`` under a unique module name (no sys.path changes)."""
    name = f"nas_export_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def export_bundle(
    arch: Arch | str,
    state_dict: dict[str, torch.Tensor],
    out_dir: str | Path,
    *,
    num_classes: int,
    in_chans: int,
    image_size: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    classes: Sequence[str] | None = None,
    metrics: dict[str, Any] | None = None,
    formats: Sequence[str] = ("pytorch",),
    title: str | None = None,
    weights_origin: str = "export",
    log=None,
) -> ExportResult:
    """Write the export folder (see the module docstring) and verify it.

    Everything that can be checked without writing is checked first (the folder, the
    weights against the architecture, the network on an input of the data's size); the
    files are then built and verified in a staging folder beside ``out_dir`` and moved
    into it only when all of them passed, so a failing export leaves ``out_dir`` as it was.
    ``weights_origin`` names where ``state_dict`` came from (a weights file) in errors.
    """
    arch = Arch.parse(arch) if isinstance(arch, str) else arch
    formats = parse_formats(formats)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NasInputError(f"--out {out}: exists and is not a folder")
    if "onnx" in formats:
        _require_onnx()
    engine = _engine_model(arch, state_dict, num_classes, in_chans, weights_origin)
    example = torch.randn(2, in_chans, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = engine(example)  # an architecture that cannot run on this input size fails here
    _make_parent(out)
    with staged_folder(out, owned=BUNDLE_FILES) as stage:
        result = ExportResult(out)
        weights_file = weights_filename()
        digest = save_weights(engine.state_dict(), stage / weights_file,
                              metadata={"genotype": str(arch), "format": "nas/1"})
        source = generate_model_source(
            arch, num_classes, in_chans, image_size=image_size, mean=mean, std=std, classes=classes,
            weights_file=weights_file, weights_sha256=digest, title=title,
        )
        _write_text(stage / "model.py", source)
        _write_text(stage / "genotype.txt", str(arch) + "\n")
        result.files += ["model.py", weights_file, "genotype.txt"]
        _verify_formats(stage, example, expected, formats, result)
        info = _metrics_json(metrics, arch, num_classes, in_chans, image_size, mean, std, classes, weights_file, digest)
        info["export"] = _export_info(formats, result)
        _write_text(stage / METRICS_FILE, metrics_text(info))
        result.files.append("metrics.json")
    return result


def _make_parent(out: Path) -> None:
    """The folder that will hold ``out`` (and, briefly, its staging folder)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasInputError(f"--out {out}: cannot create folder: {exc.strerror or exc}") from None


def _engine_model(
    arch: Arch, state_dict: dict[str, torch.Tensor], num_classes: int, in_chans: int, weights_origin: str
) -> torch.nn.Module:
    """The engine's model with the weights loaded (strict, one-line error): the reference."""
    engine = build(arch, num_classes=num_classes, in_chans=in_chans)
    load_state_strict(engine, state_dict, weights_origin)
    return engine.eval()


def _verify_formats(
    stage: Path, example: torch.Tensor, expected: torch.Tensor, formats: list[str], result: ExportResult
) -> None:
    """Load model.py with its written weights and check it (and each extra format) against the engine."""
    net = import_model_file(stage / "model.py").load_model()
    with torch.no_grad():
        got = net(example)
    result.max_abs_diff["pytorch"] = _check_close("model.py", got, expected)
    if "torchscript" in formats:
        export_torchscript(net, example, stage / TORCHSCRIPT_FILE)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            loaded = torch.jit.load(str(stage / TORCHSCRIPT_FILE))
            result.max_abs_diff["torchscript"] = _check_close(TORCHSCRIPT_FILE, loaded(example), expected)
        result.files.append(TORCHSCRIPT_FILE)
    if "onnx" in formats:
        export_onnx(net, example, stage / ONNX_FILE)
        result.max_abs_diff["onnx"] = _check_close(ONNX_FILE, run_onnx(stage / ONNX_FILE, example), expected)
        result.files.append(ONNX_FILE)


def _metrics_json(
    metrics: dict[str, Any] | None, arch: Arch, num_classes: int, in_chans: int, image_size: int,
    mean: Sequence[float] | None, std: Sequence[float] | None, classes: Sequence[str] | None,
    weights_file: str, digest: str,
) -> dict[str, Any]:
    """The pick's metrics plus what a user of the folder needs to feed the network."""
    info = dict(metrics or {})
    info.update({
        "arch": str(arch),
        "num_classes": num_classes,
        "in_chans": in_chans,
        "image_size": image_size,
        "mean": list(mean) if mean is not None else None,
        "std": list(std) if std is not None else None,
        "classes": list(classes) if classes is not None else None,
        "weights_file": weights_file,
        "weights_sha256": digest,
    })
    return info


def _export_info(formats: list[str], result: ExportResult) -> dict[str, Any]:
    return {"formats": formats, "files": result.files + ["metrics.json"],
            "max_abs_diff_vs_engine": result.max_abs_diff, "nas_version": nas_version,
            "torch_version": torch.__version__}


def export_torchscript(net: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """A traced TorchScript file at the example's input size."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example)
        with atomic_target(path) as tmp:
            torch.jit.save(traced, str(tmp))
            make_shareable(tmp)


def export_onnx(net: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """ONNX opset 17, input ``input`` (dynamic batch), output ``logits``."""
    _require_onnx()
    net.eval()
    with torch.no_grad():
        net(example)  # fill the partial-padding ratio caches: they become constants
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = dict(input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
        try:
            with atomic_target(path) as tmp:
                torch.onnx.export(net, (example,), str(tmp), dynamo=False, **kwargs)
                make_shareable(tmp)
        except TypeError:  # torch without the dynamo switch
            with atomic_target(path) as tmp:
                torch.onnx.export(net, (example,), str(tmp), **kwargs)
                make_shareable(tmp)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise NasInputError("--format onnx needs the onnx package (pip install 'nas[onnx]')") from None


def run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    """Run an ONNX file: onnxruntime if importable, else onnx's checker + reference evaluator."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        out = ReferenceEvaluator(model).run(None, {"input": x.numpy()})[0]
    else:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {"input": x.numpy()})[0]
    return torch.from_numpy(out)


def _check_close(what: str, got: torch.Tensor, expected: torch.Tensor) -> float:
    diff = float((got.float() - expected.float()).abs().max())
    if not diff <= ATOL:
        raise RuntimeError(f"export check failed: {what} differs from the engine model by {diff:.3g} (> {ATOL})")
    return diff


def _write_text(path: Path, text: str) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        make_shareable(tmp)


__all__ = [
    "ExportResult", "FORMATS", "export_bundle", "export_onnx", "export_torchscript", "import_model_file", "parse_formats",
    "run_onnx",
]
