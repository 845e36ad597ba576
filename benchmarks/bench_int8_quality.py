"""What int8 costs in ranking quality: R@1 and MRR of a trained selector on a fixed group file, torch fp32
against its ONNX exports (fp32, int8, int8 of the O2 graph), and the Spearman correlation of their scores.

The model folder is only read: it is copied to a temporary folder and exported there.

    python benchmarks/bench_int8_quality.py --model runs/demo/fine-tuned --groups runs/demo/groups/test.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ko_mrs import ResponseSelector  # noqa: E402
from ko_mrs.export import export_onnx  # noqa: E402
from ko_mrs.metrics import compute_ranking_metrics  # noqa: E402

GRAPHS = {"ONNX Runtime fp32": "model.onnx", "ONNX Runtime int8": "model_qint8.onnx",
          "ONNX Runtime int8 O2": "model_O2_qint8.onnx"}  # fmt: skip


def scores_of(selector: ResponseSelector, groups: list[dict]) -> np.ndarray:
    """Every candidate's score, group after group, in candidate order."""
    pairs = [(group["context"], candidate) for group in groups for candidate in group["candidates"]]
    return selector.predict(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="fine-tuned model folder (read only)")
    parser.add_argument(
        "--groups", type=Path, required=True, help="evaluation groups JSONL (context, candidates, labels)"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    groups = [json.loads(line) for line in args.groups.read_text(encoding="utf-8").splitlines() if line.strip()]
    group_ids = [group["group_id"] for group in groups for _ in group["candidates"]]
    labels = [label for group in groups for label in group["labels"]]
    print(f"{args.model} on {args.groups} ({len(groups)} groups), load average {os.getloadavg()[0]:.2f}\n")
    print("| scores from | R@1 | MRR | Spearman vs torch | max abs(P diff) | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        shutil.copytree(args.model, model, ignore=shutil.ignore_patterns("checkpoint-*", "*.bin", "*.jsonl"))
        export_onnx(model, quantize="int8")
        export_onnx(model, optimize="O2", quantize="int8")
        reference = None
        for name, kwargs in [
            ("torch fp32", {}),
            *((n, {"backend": "onnx", "file_name": f}) for n, f in GRAPHS.items()),
        ]:
            start = time.perf_counter()
            scores = scores_of(ResponseSelector.from_pretrained(str(model), device="cpu", **kwargs), groups)
            seconds = time.perf_counter() - start
            flat = scores.astype(np.float64)
            reference = flat if reference is None else reference
            metrics = compute_ranking_metrics(group_ids, flat.tolist(), labels)
            r_at_1 = next(value for key, value in metrics.items() if key.endswith("@1") and key.startswith("r"))
            rho = spearmanr(reference, flat).statistic
            print(f"| {name} | {r_at_1:.4f} | {metrics['mrr']:.4f} | {rho:.5f} | "
                  f"{np.abs(flat - reference).max():.4f} | {seconds:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
