"""The engine's own torch-only modules as source text, for an exported ``model.py``.

An exported ``model.py`` carries the layer and block code of the engine itself, not a copy:
each module in :data:`EMITTED_MODULES` is read with :mod:`inspect` and written out verbatim,
minus what only makes sense inside the package (``from __future__``, imports — gathered once
at the top of ``model.py`` — intra-package imports, ``__all__``, and declarations without a
value such as :mod:`nas.export.runtime`'s). Its docstring becomes a comment heading.

Each emitted module may import only the stdlib, torch and modules emitted before it, so
the concatenation runs on its own; :func:`module_source` checks this.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import dataclass

# In dependency order: each imports only the stdlib, torch and the ones before it.
EMITTED_MODULES = (
    "nas.errors",
    "nas.borders",
    "nas.layers.padding",
    "nas.layers.mixconv",
    "nas.layers.activations",
    "nas.layers.squeeze_excite",
    "nas.blocks",
)
# The loader (preprocess, read_weights, load_model): written after the generated Net class.
RUNTIME_MODULE = "nas.export.runtime"

_PACKAGE = "nas"


@dataclass(frozen=True)
class ModuleSource:
    """One module as ``model.py`` carries it: its docstring, its outside imports, its code."""

    name: str
    doc: str
    imports: tuple[str, ...]  # stdlib / torch import statements, as written
    body: str  # the code, verbatim, without imports, __all__ and value-less declarations


def _imported_module(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names]


def _is_dropped(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.AnnAssign) and node.value is None:
        return True  # a declaration of a name model.py defines elsewhere
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)


def module_source(name: str, allowed: tuple[str, ...] = ()) -> ModuleSource:
    """Split module ``name`` into docstring, outside imports and verbatim code.

    ``allowed``: the package modules it may import (those emitted before it).
    """
    source = inspect.getsource(importlib.import_module(name))
    tree = ast.parse(source)
    lines = source.splitlines()
    doc = ast.get_docstring(tree, clean=True) or ""
    dropped: set[int] = set()  # 0-based line numbers
    imports: list[str] = []
    for i, node in enumerate(tree.body):
        if i == 0 and doc and isinstance(node, ast.Expr):
            dropped.update(range(node.lineno - 1, node.end_lineno))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for module in _imported_module(node):
                top = module.split(".")[0]
                if top == _PACKAGE and module not in allowed:
                    raise RuntimeError(f"{name} imports {module}, which model.py does not carry before it")
            if not any(m.split(".")[0] in (_PACKAGE, "__future__") for m in _imported_module(node)):
                imports.append(ast.get_source_segment(source, node))
        if _is_dropped(node):
            first = node.lineno - 1
            while first > 0 and lines[first - 1].lstrip().startswith("#"):
                first -= 1  # a dropped statement takes its leading comment with it
            dropped.update(range(first, node.end_lineno))
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    body = re.sub(r"\n{3,}", "\n\n\n", "\n".join(kept)).strip("\n")
    return ModuleSource(name, doc, tuple(imports), body)


def emitted_modules() -> list[ModuleSource]:
    """The layer/block modules, then the runtime, each checked against what precedes it."""
    out = []
    for name in EMITTED_MODULES + (RUNTIME_MODULE,):
        out.append(module_source(name, allowed=tuple(m.name for m in out)))
    return out


__all__ = ["EMITTED_MODULES", "RUNTIME_MODULE", "ModuleSource", "emitted_modules", "module_source"]
