"""Export: a picked network as a standalone PyTorch module (+ TorchScript / ONNX).

- :func:`nas.export.codegen.generate_model_source` — genotype -> torch-only ``model.py`` text;
- :func:`nas.export.bundle.export_bundle` — write and verify an export folder;
- :mod:`nas.export.weights` — weights files with a recorded SHA-256.
"""

from __future__ import annotations

from nas.export.bundle import FORMATS, ExportResult, export_bundle, parse_formats
from nas.export.codegen import generate_model_source

__all__ = ["ExportResult", "FORMATS", "export_bundle", "generate_model_source", "parse_formats"]
