"""``mrs-export``: write a fine-tuned selector as ONNX (fp32, graph-optimised, int8) into its model folder.

Optimum's exporter does not support transformers 5 (huggingface/optimum-onnx#114), so this uses the pieces it
calls itself: PyTorch's TorchScript ONNX exporter, ONNX Runtime's transformer optimiser (``--optimize``, Optimum's
O1-O3 levels) and ONNX Runtime's dynamic quantiser (``--quantize int8``: int8 weights of the matrix products,
activations quantised at run time, no calibration data). Files and input/output names follow the
sentence-transformers / Optimum layout (``onnx/model.onnx``, ``onnx/model_O2.onnx``, ``onnx/model_qint8.onnx``;
``input_ids``, ``attention_mask``, ``token_type_ids`` -> ``logits``). Each graph is run against the torch model
before it is kept: an fp32 graph must give the same logits (1e-3), an approximate one (int8, O3's GELU) reports
its difference.

    mrs-export runs/fine-tune --format onnx --optimize O2 --quantize int8
    # then: ResponseSelector.from_pretrained("runs/fine-tune", backend="onnx", quantized=True)
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from transformers import AutoConfig

from ko_mrs.backends import (
    ONNX_FILE,
    QUANTIZED_FILE,
    ExportedClassifier,
    exported_file,
    require,
)
from ko_mrs.cli_errors import UsageError, cli_main
from ko_mrs.speakers import UtteranceFeatures

__all__ = ["ExportedGraph", "export_onnx", "main"]

OPSET = 17
# the graph's inputs, as Optimum and sentence-transformers name them (token_type_ids only where the tokenizer uses them)
GRAPH_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPTIMIZATION_LEVELS = ("O1", "O2", "O3")
# Largest |logit| difference an exact (fp32) graph may show against the torch model on the check batch.
FP32_TOLERANCE = 1e-3

# The encoder's matrix products; the embedding tables (Gather) stay fp32. On the demo model (BENCHMARKS.md section
# 14) quantising them too, or per-channel weights, moved scores 3-14x further from fp32 for a smaller file only.
QUANTIZED_OPS = ["MatMul", "Attention"]


class ExportedGraph(NamedTuple):
    path: Path
    max_abs_diff: float  # largest |logit| difference from the torch model on the check batch


class _Logits(nn.Module):
    """The model's forward with named tensor inputs and one tensor out, the shape the exporter traces."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def _check_batch(input_names: list[str]) -> dict[str, torch.Tensor]:
    """Two pairs of different lengths (one padded), both token types: what tracing and checking need to see."""
    input_ids = torch.tensor([[2, *range(5, 19), 3], [2, *range(7, 14), 3, *[0] * 7]])
    attention_mask = (torch.arange(16) < torch.tensor([[16], [9]])).long()
    token_type_ids = (torch.arange(16) >= 8).long().expand(2, 16) * attention_mask
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    return {name: batch[name] for name in input_names}


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp")


class _Check(NamedTuple):
    """The check batch and the torch model's logits on it, taken before export (tracing leaves the model altered)."""

    config: Any
    batch: dict[str, torch.Tensor]
    logits: torch.Tensor


def _checked(path: Path, tmp: Path, check: _Check, exact: bool) -> ExportedGraph:
    """Compare ``tmp``'s logits with the torch model's; move an exact graph to ``path`` only if they agree."""
    actual = ExportedClassifier(tmp, check.config, "onnx")(**check.batch).logits
    diff = float((actual - check.logits).abs().max())
    if exact and not diff <= FP32_TOLERANCE:
        tmp.unlink()
        raise RuntimeError(f"the exported {path.name} differs from the torch model by {diff:.2e} (> {FP32_TOLERANCE})")
    os.replace(tmp, path)
    return ExportedGraph(path, diff)


def export_onnx(
    model_dir: str | Path,
    *,
    optimize: str | None = None,
    quantize: str | None = None,
    opset: int = OPSET,
) -> list[ExportedGraph]:
    """Export the fine-tuned selector in ``model_dir`` to ``model_dir/onnx/``; returns the graphs written.

    ``optimize`` (O1/O2/O3) writes ``model_<level>.onnx`` next to ``model.onnx``; ``quantize="int8"`` quantises
    the optimised graph into ``model_<level>_qint8.onnx`` if there is one, else ``model.onnx`` into
    ``model_qint8.onnx``. Every file is written whole or not at all.
    """
    from ko_mrs.ranking import ResponseSelector  # the loader that knows the mean-pooled class

    if optimize is not None and optimize not in OPTIMIZATION_LEVELS:
        raise ValueError(f"unknown optimization level {optimize!r}: use one of {', '.join(OPTIMIZATION_LEVELS)}")
    if quantize not in (None, "int8"):
        raise ValueError(f"unknown quantization {quantize!r}: use 'int8'")
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: not a local model folder (mrs-export writes into the folder)")
    require("onnx")  # before the slow part: checking every graph needs ONNX Runtime
    # checked before the model loads: the graph would need per-token speaker / turn ids, which no runner feeds
    extra = UtteranceFeatures.from_config(AutoConfig.from_pretrained(model_dir)).embedding_inputs
    if extra:
        raise UsageError(
            f"{model_dir}: a model with {' and '.join(extra)} embeddings cannot be exported yet; speaker and "
            "turn-distance tokens (--speaker_encoding tokens) export as plain BERT"
        )
    selector = ResponseSelector.from_pretrained(str(model_dir), device="cpu")
    model = selector.model.float()
    # eager attention exports as plain MatMul/Softmax, the pattern ONNX Runtime's attention fusion recognises
    model.set_attn_implementation("eager")
    input_names = [name for name in GRAPH_INPUTS if name != "token_type_ids" or selector.use_token_types]
    batch = _check_batch(input_names)
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in input_names}
    written = []
    with torch.inference_mode(False), torch.no_grad():
        check = _Check(model.config, batch, model(**batch).logits)
        path = model_dir / exported_file()
        tmp = _atomic_target(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(
                _Logits(model),
                (),
                str(tmp),
                kwargs=batch,
                input_names=input_names,
                output_names=["logits"],
                dynamic_axes={**axes, "logits": {0: "batch_size"}},
                opset_version=opset,
                dynamo=False,
            )
        written.append(_checked(path, tmp, check, exact=True))
        if optimize is not None:
            written.append(_optimize(path, optimize, check))
        if quantize is not None:
            written.append(_quantize(written[-1].path, check))
    return written


def _optimize(source: Path, level: str, check: _Check) -> ExportedGraph:
    """ONNX Runtime's transformer fusions (attention, LayerNorm, GELU) at Optimum's level ``level``."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_embed_layer_norm = False  # as Optimum: that fusion assumes BERT's own position ids
    options.enable_gelu_approximation = level == "O3"
    config = check.config
    optimized = optimize_model(
        str(source),
        model_type="bert",  # the fusions match any BERT-shaped encoder (BERT, RoBERTa, XLM-R, ELECTRA)
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        optimization_options=options,
        opt_level=1 if level == "O1" else 2,
        only_onnxruntime=level == "O1",
    )
    path = source.with_name(f"model_{level}.onnx")
    tmp = _atomic_target(path)
    optimized.save_model_to_file(str(tmp))
    return _checked(path, tmp, check, exact=level != "O3")


def _quantize(source: Path, check: _Check) -> ExportedGraph:
    """int8 weights, activations quantised per batch at run time (no calibration data needed).

    From ``model.onnx`` the result is a standard ONNX graph (OpenVINO runs it too); from an optimised graph it
    holds ONNX Runtime's fused ``QAttention``, which only ONNX Runtime runs.
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = source.with_name(QUANTIZED_FILE if source.name == ONNX_FILE else f"{source.stem}_qint8.onnx")
    tmp = _atomic_target(path)
    # DefaultTensorType: shape inference cannot type the outputs of ONNX Runtime's fused (contrib) operators
    extra = {"DefaultTensorType": TensorProto.FLOAT}
    quantize_dynamic(source, tmp, op_types_to_quantize=QUANTIZED_OPS, weight_type=QuantType.QInt8, extra_options=extra)
    return _checked(path, tmp, check, exact=False)


# ----------------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrs-export",
        description="Export a fine-tuned response selector to ONNX (fp32, optimised, int8) inside its folder.",
        epilog="example:\n  mrs-export runs/fine-tune --format onnx --optimize O2 --quantize int8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, help="local fine-tuned model folder (the files go into MODEL/onnx/)")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="onnx (OpenVINO runs the same file)")
    parser.add_argument("--optimize", choices=OPTIMIZATION_LEVELS, help="also write model_<level>.onnx")
    parser.add_argument("--quantize", choices=["int8"], help=f"also write {QUANTIZED_FILE}")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default: {OPSET})")
    return parser


def _run(argv: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    try:
        written = export_onnx(args.model, optimize=args.optimize, quantize=args.quantize, opset=args.opset)
    except ValueError as err:
        raise UsageError(str(err)) from err
    for graph in written:
        size = graph.path.stat().st_size / 2**20
        print(f"wrote {graph.path} ({size:.1f} MiB, max |logit - torch| = {graph.max_abs_diff:.2e})")
    print(f'load it with ResponseSelector.from_pretrained("{args.model}", backend="onnx"'
          f'{", quantized=True" if args.quantize else ""})')  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``mrs-export``: 0 on success, 2 with a one-line message on a usage error or a missing dependency."""
    return cli_main("mrs-export", _run, argv)


if __name__ == "__main__":
    sys.exit(main())
