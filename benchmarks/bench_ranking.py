"""Ranking throughput of ResponseSelector on CPU: contexts/s at 10 candidates, and the time per context at
100 and 1,000 candidates, for the tiny demo config and a klue-bert-base-sized random config.

Contexts and candidates are real Korean dialogues from ../shared/data/ko (read in place), 3 context
turns each. The models have random weights: speed does not depend on them.

    python benchmarks/bench_ranking.py [--contexts 20]
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "ko"

from ko_mrs import ResponseSelector  # noqa: E402
from ko_mrs.tiny_model import build_tiny_model  # noqa: E402

CONFIGS = {"tiny (configs/tiny-demo.yaml)": ROOT / "configs/tiny-demo.yaml",
           "klue-bert-base-sized": ROOT / "benchmarks/configs/bert-base-random.yaml"}  # fmt: skip


def selector_for(config_path: Path, files: list[str], workdir: Path) -> ResponseSelector:
    """A random-weight 2-class model of the config's size with a tokenizer trained on the corpus."""
    model_dir = build_tiny_model(files, config_path, workdir / "base")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    settings = yaml.safe_load(config_path.read_text())["model"]
    config = BertConfig(vocab_size=len(tokenizer), num_labels=2, id2label={0: "not_next", 1: "next"}, **settings)
    BertForSequenceClassification(config).save_pretrained(workdir / "ranker")
    tokenizer.save_pretrained(workdir / "ranker")
    return ResponseSelector.from_pretrained(str(workdir / "ranker"), device="cpu", max_length=256, batch_size=32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contexts", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    files = sorted(glob.glob(str(SHARED / "*" / "*.jsonl")))
    dialogues = [json.loads(line)["utterances"] for f in files for line in open(f, encoding="utf-8")]
    pool = [u for d in dialogues for u in d]
    rng = random.Random(0)
    contexts = [d[:3] for d in rng.sample([d for d in dialogues if len(d) >= 4], args.contexts)]
    print("| model | candidates | contexts | seconds per context | contexts/s | pairs/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, config_path in CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            selector = selector_for(config_path, files, Path(tmp))
            selector.rank(contexts[0], rng.sample(pool, 10))  # warm-up
            for n_candidates in (10, 100, 1000):
                n_contexts = args.contexts if n_candidates == 10 else max(2, args.contexts // (n_candidates // 10))
                batches = [(c, rng.sample(pool, n_candidates)) for c in contexts[:n_contexts]]
                start = time.perf_counter()
                for context, candidates in batches:
                    selector.rank(context, candidates)
                per_context = (time.perf_counter() - start) / n_contexts
                print(f"| {name} | {n_candidates} | {n_contexts} | {per_context:.3f} | {1 / per_context:.2f} | "
                      f"{n_candidates / per_context:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
