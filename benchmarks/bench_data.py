"""Data preparation benchmark: dialogues/s from JSONL to tokenised post-training windows, and peak RSS.

The Korean dialogues of ../shared/data/ko are repeated (with fresh ids) up to N dialogues, written to
a temporary JSONL file, then read, validated, tokenised (WordPiece, 8,000 vocabulary) and cut into
k=3 windows, each stage through Arrow on disk. Each size runs in its own process so that its peak
RSS is its own.

    python benchmarks/bench_data.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "ko"


def write_scaled_corpus(path: Path, size: int) -> None:
    source = [json.loads(line) for f in sorted(glob.glob(str(SHARED / "*" / "*.jsonl"))) for line in open(f)]
    with path.open("w", encoding="utf-8") as handle:
        for i in range(size):
            record = source[i % len(source)]
            handle.write(json.dumps({**record, "id": f"{record['id']}#{i}"}, ensure_ascii=False) + "\n")


def run_one(size: int, workdir: Path, tokenizer_dir: Path) -> dict:
    os.environ["HF_DATASETS_CACHE"] = str(workdir / "cache")
    import datasets
    from transformers import AutoTokenizer

    from ko_mrs.dialogue_data import read_dialogues
    from ko_mrs.preprocessing import add_eot_token, build_windows, tokenize_dialogues

    datasets.disable_progress_bars()
    corpus = workdir / "corpus.jsonl"
    write_scaled_corpus(corpus, size)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    add_eot_token(tokenizer)
    start = time.perf_counter()
    dialogues, _ = read_dialogues(corpus, skip_short=True)
    read_s = time.perf_counter() - start
    tokenized = tokenize_dialogues(dialogues, tokenizer)
    tok_s = time.perf_counter() - start - read_s
    windows = build_windows(tokenized, window=3)
    total = time.perf_counter() - start
    return {
        "dialogues": size,
        "windows": len(windows),
        "read_s": round(read_s, 1),
        "tokenise_s": round(tok_s, 1),
        "total_s": round(total, 1),
        "dialogues_per_s": round(size / total),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "corpus_mb": round(corpus.stat().st_size / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, Path(args.workdir), Path(args.tokenizer))))
        return
    from ko_mrs.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_dir = build_tiny_model(
            sorted(glob.glob(str(SHARED / "*" / "*.jsonl"))), ROOT / "configs/tiny-demo.yaml", Path(tmp) / "tok"
        )
        print("| dialogues | windows | read s | tokenise s | total s | dialogues/s | peak RSS MB | corpus MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            workdir = Path(tmp) / f"n{size}"
            workdir.mkdir()
            out = (
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--one",
                        str(size),
                        "--workdir",
                        str(workdir),
                        "--tokenizer",
                        str(tokenizer_dir),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(out)
            print(
                f"| {r['dialogues']:,} | {r['windows']:,} | {r['read_s']} | {r['tokenise_s']} | {r['total_s']} | "
                f"{r['dialogues_per_s']:,} | {r['peak_rss_mb']:,} | {r['corpus_mb']:,} |",
                flush=True,
            )
            subprocess.run(["rm", "-rf", str(workdir)], check=True)


if __name__ == "__main__":
    main()
