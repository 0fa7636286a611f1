"""The exported model.py carries the engine's own code: emitted verbatim, not a copy that can drift."""

from __future__ import annotations

import ast
import importlib
import inspect
import sys

import pytest
import torch
import torch.nn as nn

import nas
import nas.builder
from nas.blocks import create_pool
from nas.builder import NasNet, block_call, net_calls
from nas.construct import Call
from nas.errors import NasInputError
from nas.export.codegen import NET_METHODS, generate_model_source, render
from nas.export.emit import EMITTED_MODULES, RUNTIME_MODULE, emitted_modules
from nas.genotype import Arch
from nas.layers.factory import conv2d_call, create_conv2d

GENOTYPE = (
    "stem c12 s1 | ir k3.5.7.9 e6 c20 s2 se0.5 split=exp pad=circular down=max, "
    "ir k5 e3 c20 g3.2 pad=partial | ds k3.5 c24 s2 down=avg d2 pad=reflect | head c32 act=swish"
)


def _lines(source: str, node: ast.AST) -> str:
    """The whole lines a definition spans (decorators and trailing comments included)."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(source.splitlines()[first - 1:node.end_lineno]).strip()


def _defined(module) -> list:
    """Classes and functions a module defines itself (not the ones it imports)."""
    return [obj for obj in vars(module).values()
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__]


@pytest.fixture(scope="module")
def source() -> str:
    return generate_model_source(GENOTYPE, 5, 2)


def test_every_emitted_class_and_function_is_the_engines_source(source):
    tree = ast.parse(source)
    written = {n.name: _lines(source, n) for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    for name in EMITTED_MODULES + (RUNTIME_MODULE,):
        module = importlib.import_module(name)
        objects = _defined(module)
        assert objects, name
        for obj in objects:
            engine = inspect.getsource(obj).strip()
            assert written.get(obj.__name__) == engine, f"{name}.{obj.__name__} is not emitted verbatim"


def test_net_forward_methods_are_nasnets(source):
    tree = ast.parse(source)
    net = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Net")
    methods = {n.name: _lines(source, n) for n in net.body if isinstance(n, ast.FunctionDef)}
    for method in NET_METHODS:
        engine = inspect.getsource(getattr(NasNet, method)).strip()
        assert methods[method] == engine, method


def test_emitted_modules_are_torch_only_and_in_dependency_order():
    seen: list[str] = []
    for module in emitted_modules():
        tree = ast.parse(inspect.getsource(importlib.import_module(module.name)))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            for imported in names:
                top = imported.split(".")[0]
                assert top in sys.stdlib_module_names or top in ("torch", "safetensors") or imported in seen, \
                    f"{module.name} imports {imported}"
        seen.append(module.name)
    assert "typing" not in "".join(m for mod in emitted_modules() for m in mod.imports)


def test_net_arguments_are_the_build_arguments(source):
    module = type(sys)("gen")
    exec(compile(source, "model.py", "exec"), module.__dict__)
    for num_classes, in_chans, drop_rate in ((5, 2, 0.0), (3, 4, 0.25)):
        net = module.Net(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
        engine = nas.build(GENOTYPE, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
        assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in engine.state_dict().items()}
        assert net.dropout.p == drop_rate and net.num_features == engine.num_features == 32
        # same module classes, layer by layer (the engine's own classes, re-defined in model.py)
        assert [type(m).__name__ for m in net.modules()][1:] == [type(m).__name__ for m in engine.modules()][1:]
    # padding errors name the layer in the exported network too
    tiny = module.Net().eval()
    with pytest.raises(module.NasInputError, match=r"blocks\.0\.0\.conv_dw"):
        tiny(torch.randn(1, 2, 2, 2))


def _built_from_source(call: Call) -> nn.Module:
    namespace = {"nn": nn}
    for name in EMITTED_MODULES:
        namespace.update({obj.__name__: obj for obj in _defined(importlib.import_module(name))})
    return eval(render(call, 0, set(EMITTED_MODULES)), namespace)


@pytest.mark.parametrize("args,kwargs", [
    ((8, 16, 3), {}),
    ((8, 8, [3, 5, 7]), dict(depthwise=True, partition="exp", stride=2, padding_mode="partial")),
    ((8, 8, 5), dict(depthwise=True, dilation=2, padding_mode="reflect")),
    ((9, 15, 1), dict(groups=2)),
    ((8, 8, 3), dict(depthwise=True, padding_mode="circular", impl="split")),
])
def test_a_rendered_call_builds_what_the_call_builds(args, kwargs):
    call = conv2d_call(*args, **kwargs)
    assert repr(_built_from_source(call)) == repr(call.build()) == repr(create_conv2d(*args, **kwargs))


def test_a_rendered_block_builds_what_the_builder_builds():
    arch = Arch.parse(GENOTYPE)
    chs = arch.stem.channels
    for block in arch.blocks():
        call = block_call(block, chs)
        assert repr(_built_from_source(call)) == repr(call.build())
        chs = block.out_channels
    assert list(net_calls(arch, 5, 2)) == [name for name, _ in NasNet(arch, 5, 2).named_children()]


def test_nas_build_is_the_builder():
    assert nas.build is nas.builder.build


def test_layer_and_block_input_errors_are_nas_input_errors():
    with pytest.raises(NasInputError, match="down=mean"):
        create_pool("mean", 2)
    with pytest.raises(NasInputError, match="keeps its channels"):
        create_conv2d(8, 16, 3, depthwise=True)
    with pytest.raises(NasInputError, match="depthwise=True"):
        create_conv2d(8, 8, [3, 5])
