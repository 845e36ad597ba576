"""Hard-negative mining throughput and memory (issue 11): BM25 over every utterance, one query per context.

    python benchmarks/bench_mining.py --dialogues 100000 --tokenizer char_bigram
    python benchmarks/bench_mining.py --dialogues 10000 --tokenizer kiwi

The dialogues are the demo corpus generator's (synthetic Korean, 4 to 12 turns), built in memory so that no
``datasets`` cache is hit: every run mines from scratch. Prints one JSON line: dialogues, contexts, utterances,
shards, seconds, contexts/s, the process's CPU seconds (all threads: the fair measure on a shared machine) and its
peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402
from datasets import Dataset  # noqa: E402

from ko_mrs.demo_corpus import generate_dialogues  # noqa: E402
from ko_mrs.negatives import HARD_NEGATIVE_TOKENIZERS, SHARD_SIZE, mine_hard_negatives  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=100_000)
    parser.add_argument("--tokenizer", choices=HARD_NEGATIVE_TOKENIZERS, default="char_bigram")
    parser.add_argument("--top_k", type=int, default=10)
    parser.add_argument("--shard_size", type=int, default=SHARD_SIZE, help="utterances per BM25 index")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    records = generate_dialogues(args.dialogues, seed=1)
    dialogues = Dataset.from_dict({"utterances": [r["utterances"] for r in records], "corpus": ["demo"] * len(records)})
    utterances = sum(len(r["utterances"]) for r in records)
    contexts = utterances - len(records)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu_start = time.perf_counter(), time.process_time()
    mined = mine_hard_negatives(dialogues, tokenizer=args.tokenizer, top_k=args.top_k, shard_size=args.shard_size)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    found = sum(len(hits) for lists in mined["hard_dialogue"] for hits in lists)
    print(
        json.dumps(
            {
                "dialogues": len(records),
                "utterances": utterances,
                "contexts": contexts,
                "tokenizer": args.tokenizer,
                "top_k": args.top_k,
                "shards": -(-utterances // args.shard_size),
                "hard_negatives": found,
                "seconds": round(seconds, 1),
                "contexts_per_s": round(contexts / seconds),
                "cpu_seconds": round(cpu_seconds, 1),
                "contexts_per_cpu_s": round(contexts / cpu_seconds),
                "peak_rss_mib_before": round(before / 1024),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
