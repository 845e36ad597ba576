"""Inference backends for a response selector: PyTorch, or an exported ONNX graph run by ONNX Runtime or OpenVINO.

An exported model lives in the model folder as sentence-transformers and Optimum lay it out: ``onnx/model.onnx``
(fp32), ``onnx/model_O2.onnx`` (graph-optimised), ``onnx/model_qint8.onnx`` (int8 weights, dynamic activation
quantisation), beside the ``config.json`` and tokenizer of the torch model. :class:`ExportedClassifier` is called
like the torch model (``model(**inputs).logits``), so ``ko_mrs.scoring`` scores it the same way.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput

from ko_mrs.cli_errors import UsageError, first_line

__all__ = [
    "BACKENDS",
    "ONNX_FOLDER",
    "ExportedClassifier",
    "MissingDependencyError",
    "check_backend",
    "exported_file",
    "require",
]

BACKENDS = ("torch", "onnx", "openvino")
ONNX_FOLDER = "onnx"
ONNX_FILE = "model.onnx"
QUANTIZED_FILE = "model_qint8.onnx"
# the module each backend imports, and the extra of ko-mrs that installs it
DEPENDENCIES = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino")}


class MissingDependencyError(ImportError, UsageError):
    """An optional backend's package is not installed; the message says what to pip install (CLIs: exit 2)."""


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(map(repr, BACKENDS))}")
    return backend


def require(backend: str) -> Any:
    """Import the package ``backend`` runs on, or raise :class:`MissingDependencyError` with the install line."""
    module, extra = DEPENDENCIES[backend]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f'backend={backend!r} needs the {module} package, which is not installed: pip install "ko-mrs[{extra}]"'
        ) from err


def exported_file(quantized: bool = False, file_name: str | None = None) -> str:
    """Path of an exported graph inside the model folder (``onnx/model.onnx`` or ``onnx/model_qint8.onnx``)."""
    return f"{ONNX_FOLDER}/{file_name or (QUANTIZED_FILE if quantized else ONNX_FILE)}"


class ExportedClassifier:
    """An exported sequence classifier behind the torch model's calling convention (CPU only).

    Threads: ``num_threads``, else ``torch.get_num_threads()``, so one setting governs every backend.
    """

    def __init__(self, path: str | Path, config: PretrainedConfig, backend: str, num_threads: int | None = None):
        if check_backend(backend) == "torch":
            raise ValueError("ExportedClassifier runs an exported graph: use backend 'onnx' or 'openvino'")
        self.config = config
        self.backend = backend
        self.path = Path(path)
        self.device = torch.device("cpu")
        threads = num_threads or torch.get_num_threads()
        runtime = require(backend)
        try:
            if backend == "onnx":
                options = runtime.SessionOptions()
                options.intra_op_num_threads = threads
                session = runtime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                self.input_names = [node.name for node in session.get_inputs()]
                self._run = lambda feed: session.run(None, feed)[0]
            else:
                compiled = runtime.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads})
                self.input_names = [node.get_any_name() for node in compiled.inputs]
                self._run = lambda feed: compiled(feed)[0]
        except Exception as err:  # noqa: BLE001 - each runtime has its own error types for a bad graph
            raise OSError(f"{backend} cannot load {path}: {first_line(err)}") from err

    def eval(self) -> ExportedClassifier:
        return self

    def __call__(self, **inputs: torch.Tensor) -> SequenceClassifierOutput:
        # the graph's own inputs only: a model exported without token types has no token_type_ids input
        feed = {name: inputs[name].cpu().numpy() for name in self.input_names}
        return SequenceClassifierOutput(logits=torch.from_numpy(self._run(feed)))
