"""Ranking throughput on CPU, side by side in one run: sentence-transformers' ``CrossEncoder.predict`` (torch) against
ko-mrs ``ResponseSelector.rank`` with the torch, ONNX Runtime (fp32, O2, int8) and OpenVINO backends.

Same weights, same contexts and candidates for every system: real Korean dialogues from ../shared/data/ko (read
in place), 3 context turns each; 10, 100 and 1,000 candidates per context. The models are random BERTs of
klue-bert-base size and of multilingual-e5-small size (speed does not depend on the weights). Systems take
turns context by context, so a change in machine load hits all of them alike: the ratios to ``CrossEncoder``
hold under load, the absolute contexts/s do not. The load average is printed before and after.

    python benchmarks/bench_ranking.py [--quick | --contexts 20] [--threads 2] [--models base small]
        [--candidates 10 100 1000] [--output FILE]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import yaml
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "ko"

from ko_mrs import ResponseSelector  # noqa: E402
from ko_mrs.export import export_onnx  # noqa: E402
from ko_mrs.tiny_model import build_tiny_model  # noqa: E402

CONFIGS = {"base": ("klue-bert-base-sized", ROOT / "benchmarks/configs/bert-base-random.yaml"),
           "small": ("multilingual-e5-small-sized", ROOT / "benchmarks/configs/bert-small-random.yaml")}  # fmt: skip
MAX_LENGTH = 256
BATCH_SIZE = 32
CANDIDATES = (10, 100, 1000)

Rank = Callable[[list[str], list[str]], object]


def build_model(config_path: Path, files: list[str], workdir: Path) -> Path:
    """A random-weight 2-class model of the config's size with a tokenizer trained on the corpus, exported."""
    base = build_tiny_model(files, config_path, workdir / "base")
    tokenizer = AutoTokenizer.from_pretrained(base)
    settings = yaml.safe_load(config_path.read_text())["model"]
    config = BertConfig(vocab_size=len(tokenizer), num_labels=2, id2label={0: "not_next", 1: "next"}, **settings)
    torch.manual_seed(0)
    out = workdir / "ranker"
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    export_onnx(out, quantize="int8")  # model.onnx, model_qint8.onnx (portable: OpenVINO runs it too)
    export_onnx(out, optimize="O2", quantize="int8")  # model_O2.onnx, model_O2_qint8.onnx (ONNX Runtime only)
    return out


def systems(model_dir: Path) -> dict[str, Rank]:
    """Each system's "rank one context" call; ``CrossEncoder`` gets the context joined by [EOT], as the card shows."""
    from sentence_transformers import CrossEncoder

    cross_encoder = CrossEncoder(str(model_dir), device="cpu", max_length=MAX_LENGTH)

    def cross_encoder_rank(context: list[str], candidates: list[str]) -> object:
        joined = " [EOT] ".join(context)
        return cross_encoder.predict([(joined, c) for c in candidates], batch_size=BATCH_SIZE)

    def selector(**kwargs: object) -> Rank:
        loaded = ResponseSelector.from_pretrained(
            str(model_dir), device="cpu", max_length=MAX_LENGTH, batch_size=BATCH_SIZE, **kwargs
        )
        return loaded.rank

    return {
        "sentence-transformers CrossEncoder (torch fp32)": cross_encoder_rank,
        "ko-mrs torch fp32": selector(),
        "ko-mrs ONNX Runtime fp32": selector(backend="onnx"),
        "ko-mrs ONNX Runtime fp32 O2": selector(backend="onnx", file_name="model_O2.onnx"),
        "ko-mrs ONNX Runtime int8": selector(backend="onnx", quantized=True),
        "ko-mrs ONNX Runtime int8 O2": selector(backend="onnx", file_name="model_O2_qint8.onnx"),
        "ko-mrs OpenVINO fp32": selector(backend="openvino"),
        "ko-mrs OpenVINO int8": selector(backend="openvino", quantized=True),
    }


def time_systems(
    ranks: dict[str, Rank], batches: Sequence[tuple[list[str], list[str]]]
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Wall and CPU seconds per context of each system; systems alternate context by context.

    CPU seconds (this process, all threads) barely depend on other jobs: with ``--threads 1`` they are the
    load-independent measure of the work done. With more threads they include the runtimes' spin-waiting.
    """
    total: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for context, candidates in batches:
        for name, rank in ranks.items():
            wall, cpu = time.perf_counter(), time.process_time()
            rank(context, candidates)
            total[name][0] += time.perf_counter() - wall
            total[name][1] += time.process_time() - cpu
    return {name: (wall / len(batches), cpu / len(batches)) for name, (wall, cpu) in total.items()}


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, default=20, help="contexts at 10 candidates (fewer at 100, 1,000)")
    parser.add_argument("--quick", action="store_true", help="--contexts 5: minutes, for a loaded machine")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for every system (default: 2)")
    parser.add_argument("--models", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--candidates", nargs="+", type=int, choices=CANDIDATES, default=list(CANDIDATES))
    parser.add_argument("--output", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # ko-mrs's ONNX Runtime and OpenVINO sessions take the same count
    files = sorted(glob.glob(str(SHARED / "*" / "*.jsonl")))
    dialogues = [json.loads(line)["utterances"] for f in files for line in open(f, encoding="utf-8")]
    pool = [u for d in dialogues for u in d]
    rng = random.Random(0)
    n_10 = 5 if args.quick else args.contexts
    contexts = [d[:3] for d in rng.sample([d for d in dialogues if len(d) >= 4], n_10)]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, {args.threads} threads, "
          f"torch {torch.__version__}; load average before: {load_average()}", flush=True)  # fmt: skip
    rows = []
    for key in args.models:
        name, config_path = CONFIGS[key]
        with tempfile.TemporaryDirectory() as tmp:
            ranks = systems(build_model(config_path, files, Path(tmp)))
            time_systems(ranks, [(contexts[0], rng.sample(pool, 10))])  # warm-up
            print(f"\n{name} (random weights), load average {load_average()}\n")
            print("| candidates | contexts | system | seconds per context | contexts/s | pairs/s | x CrossEncoder "
                  "| CPU s per context | x CrossEncoder (CPU s) |")  # fmt: skip
            print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
            for n_candidates in args.candidates:
                n_contexts = {10: n_10, 100: max(2, n_10 // 5), 1000: max(1, n_10 // 10)}[n_candidates]
                batches = [(c, rng.sample(pool, n_candidates)) for c in contexts[:n_contexts]]
                seconds = time_systems(ranks, batches)
                reference, reference_cpu = next(iter(seconds.values()))
                for system, (per_context, cpu) in seconds.items():
                    rows.append({"model": name, "candidates": n_candidates, "contexts": n_contexts, "system": system,
                                 "seconds_per_context": per_context, "ratio": reference / per_context,
                                 "cpu_seconds_per_context": cpu, "cpu_ratio": reference_cpu / cpu})  # fmt: skip
                    cells = (n_candidates, n_contexts, system, f"{per_context:.3f}", f"{1 / per_context:.2f}",
                             f"{n_candidates / per_context:.0f}", f"{reference / per_context:.2f}", f"{cpu:.3f}",
                             f"{reference_cpu / cpu:.2f}")  # fmt: skip
                    print("| " + " | ".join(map(str, cells)) + " |", flush=True)
    print(f"\nload average after: {load_average()}")
    if args.output:
        args.output.write_text(json.dumps({"load_average_end": load_average(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
