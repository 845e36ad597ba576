"""Post-training throughput on CPU: samples/s, real (non-pad) tokens/s, padding fraction and peak RSS.

Trains BERT-FP post-training through the real Trainer path (``PostTrainingTrainer`` +
``PostTrainingCollator`` + ``CollatorEpochCallback``) on the k=3 windows of the Korean dialogues of
../shared/data/ko (read in place), with a WordPiece tokenizer of 8,000 trained on them, batch 32,
max length 240 and 2 threads. Each variant runs in its own process, so its peak RSS is its own:

    (a) paper-like: Python tokenisation of every sample at batch time, every row padded to 240,
        MLM logits over the full batch x sequence x vocabulary
    (f) (a) without the per-sample tokenisation (pre-tokenised)
    (b) ko-mrs with fixed 240 padding only (masked-only logits, pre-tokenised)
    (c) ko-mrs with dynamic padding but full-vocabulary logits
    (d) ko-mrs as shipped (dynamic padding to a multiple of 8, masked-only logits), random sampler
    (e) (d) with train_sampling_strategy="group_by_length", the run script's default

    python benchmarks/bench_post_training.py --steps 60 --variants a f b c d e
    python benchmarks/bench_post_training.py --bert-base --steps 4 --warmup 1 --variants a e
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_GLOB = str(ROOT.parent / "shared" / "data" / "ko" / "*" / "*.jsonl")

BATCH_SIZE = 32
MAX_LENGTH = 240
THREADS = 2
SEED = 42
VOCAB_SIZE = 8000


@dataclass(frozen=True)
class Variant:
    """One benchmarked configuration."""

    name: str
    description: str
    python_tokenize: bool  # re-tokenise each example's utterance strings in Python at batch time
    fixed_padding: bool  # pad every row to MAX_LENGTH (else to a multiple of 8)
    full_logits: bool  # MLM logits over batch x sequence x vocabulary (else masked positions only)
    sampling: str  # TrainingArguments.train_sampling_strategy


VARIANTS = {
    v.name: v
    for v in (
        Variant("a", "paper-like: Python tokenisation + pad 240 + full logits", True, True, True, "random"),
        Variant("f", "(a) pre-tokenised: pad 240 + full logits", False, True, True, "random"),
        Variant("b", "pad 240, masked-only logits", False, True, False, "random"),
        Variant("c", "dynamic padding, full logits", False, False, True, "random"),
        Variant("d", "ko-mrs as shipped, random sampler", False, False, False, "random"),
        Variant("e", "ko-mrs as shipped, group_by_length", False, False, False, "group_by_length"),
    )
}

MODELS: dict[str, dict[str, int]] = {
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "bert-base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, vocab_size=32000
    ),
}


# --------------------------------------------------------------------------- child process


def full_vocab_model_class() -> type:
    """``BertForFineGrainedPostTraining`` with a ``BertForPreTraining``-style MLM head (benchmark only)."""
    import torch
    import torch.nn.functional as F

    from modeling_mrs import BertForFineGrainedPostTraining

    class FullVocabPostTraining(BertForFineGrainedPostTraining):
        """Projects every position onto the vocabulary, then takes the loss where ``labels != -100``."""

        def _masked_lm(self, sequence_output: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.cls(sequence_output)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1))
            return loss, logits

    return FullVocabPostTraining


class PythonTokenizingCollator:
    """Approximates the paper's ``__getitem__``: the slow, pure-Python BERT tokenizer runs on the k+1
    utterance strings of every example (context and true next utterance), every time it is batched.

    The ids are converted and then discarded: the tensors come from the wrapped pre-tokenised
    collator, so (a) trains on exactly the rows that (f) does and only the tokenisation cost is added.
    """

    def __init__(self, collator: Callable[[list[dict]], Any], texts: list[list[str]], tokenizer: Any) -> None:
        self.collator = collator
        self.texts = texts
        self.tokenizer = tokenizer
        self.seconds = 0.0  # spent tokenising, over all batches
        self.batches = 0

    def __call__(self, features: list[dict]) -> Any:
        start = time.perf_counter()
        for f in features:
            for text in self.texts[int(f["dialogue"])][int(f["start"]) : int(f["position"]) + 1]:
                self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(text))
        self.seconds += time.perf_counter() - start
        self.batches += 1
        return self.collator(features)


def run_variant(variant: Variant, model_name: str, steps: int, warmup: int, workdir: Path, tokenizer_dir: Path) -> dict:
    """Train ``warmup + steps`` steps; time and count tokens over the last ``steps``."""
    os.environ["HF_DATASETS_CACHE"] = str(workdir / "cache")
    import datasets
    import torch
    from transformers import AutoTokenizer, BertConfig, TrainerCallback, set_seed
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    from data_collators import PostTrainingCollator
    from ko_mrs.dialogue_data import read_dialogues
    from ko_mrs.post_training import PostTrainingArguments, PostTrainingTrainer
    from ko_mrs.preprocessing import DialoguePool, add_eot_token, build_windows, tokenize_dialogues
    from ko_mrs.training import CollatorEpochCallback
    from modeling_mrs import BertForFineGrainedPostTraining

    datasets.disable_progress_bars()
    torch.set_num_threads(THREADS)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    add_eot_token(tokenizer)
    dialogues, _ = read_dialogues(sorted(glob.glob(DATA_GLOB)), skip_short=True, cache_dir=str(workdir / "cache"))
    tokenized = tokenize_dialogues(dialogues, tokenizer)
    windows = build_windows(tokenized, window=3)
    collator = PostTrainingCollator(
        tokenizer=tokenizer,
        pool=DialoguePool(tokenized),
        max_length=MAX_LENGTH,
        pad_to_multiple_of=MAX_LENGTH if variant.fixed_padding else 8,
        seed=SEED,
    )
    data_collator: Callable[[list[dict]], Any] = collator
    if variant.python_tokenize:
        slow = BertTokenizerLegacy(str(tokenizer_dir / "vocab.txt"), do_lower_case=False, strip_accents=False)
        data_collator = PythonTokenizingCollator(collator, dialogues["utterances"], slow)
    python_tokenize = data_collator if isinstance(data_collator, PythonTokenizingCollator) else None

    settings = dict(MODELS[model_name])
    set_seed(SEED)
    config = BertConfig(
        vocab_size=settings.pop("vocab_size", len(tokenizer)),
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=256,
        type_vocab_size=2,
        **settings,
    )
    model_class = full_vocab_model_class() if variant.full_logits else BertForFineGrainedPostTraining
    model = model_class(config)

    clock: dict[int, tuple[float, float]] = {}
    tokens: list[tuple[int, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock[state.global_step] = (time.perf_counter(), time.process_time())

    class MeasuredTrainer(PostTrainingTrainer):
        def compute_loss(self, model: Any, inputs: dict, return_outputs: bool = False, num_items_in_batch: Any = None):
            mask = inputs["attention_mask"]
            tokens.append((int(mask.sum()), mask.numel()))
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    args = PostTrainingArguments(
        output_dir=str(workdir / "out"),
        max_steps=warmup + steps,
        per_device_train_batch_size=BATCH_SIZE,
        train_sampling_strategy=variant.sampling,
        report_to="none",
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        seed=SEED,
    )
    trainer = MeasuredTrainer(
        model=model,
        args=args,
        train_dataset=windows,
        data_collator=data_collator,
        processing_class=tokenizer,
        callbacks=[CollatorEpochCallback(collator), Clock()],
    )
    load = os.getloadavg()[0]
    trainer.train()

    (t0, c0), (t1, c1) = clock[warmup], clock[warmup + steps]
    timed = tokens[warmup : warmup + steps]
    real, total = sum(r for r, _ in timed), sum(t for _, t in timed)
    return {
        "variant": variant.name,
        "model": model_name,
        "windows": len(windows),
        "steps": steps,
        "seconds": t1 - t0,
        "samples_per_s": steps * BATCH_SIZE / (t1 - t0),
        "real_tokens_per_s": real / (t1 - t0),
        "real_tokens_per_row": real / (steps * BATCH_SIZE),
        "mean_width": total / (steps * BATCH_SIZE),
        "padding": 1 - real / total,
        "cpu_util": (c1 - c0) / (t1 - t0),
        "samples_per_cpu_s": steps * BATCH_SIZE / (c1 - c0),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_at_start": load,
        "vocab_size": config.vocab_size,
        "tokenize_s_per_batch": python_tokenize.seconds / python_tokenize.batches if python_tokenize else None,
        "step_s": (t1 - t0) / steps,
    }


# --------------------------------------------------------------------------- parent process


def build_tokenizer(out_dir: Path) -> Path:
    """A WordPiece tokenizer of 8,000 trained on the Korean dialogues, saved with a ``vocab.txt``."""
    from ko_mrs.dialogue_data import read_dialogues
    from ko_mrs.tiny_model import train_wordpiece

    dialogues, _ = read_dialogues(sorted(glob.glob(DATA_GLOB)), skip_short=True, cache_dir=str(out_dir / "cache"))
    texts = (text for batch in dialogues.iter(batch_size=1000) for turns in batch["utterances"] for text in turns)
    tokenizer = train_wordpiece(texts, vocab_size=VOCAB_SIZE, min_frequency=2, lowercase=False)
    tokenizer.save_pretrained(out_dir)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (out_dir / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")
    return out_dir


def machine() -> str:
    """nproc, CPU model, torch/transformers versions."""
    import torch
    import transformers

    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown"
    )
    return (
        f"nproc {len(os.sched_getaffinity(0))} ({cpu}), Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; torch.set_num_threads({THREADS})"
    )


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def table(results: list[dict], variants: list[str]) -> str:
    """Markdown table of medians over repeats, each variant's samples/s also relative to (a) when (a) ran."""
    runs = {name: [r for r in results if r["variant"] == name] for name in variants}
    speed = {name: median([r["samples_per_s"] for r in rs]) for name, rs in runs.items()}
    lines = [
        "| variant | what | samples/s (min-max) | vs (a) | real tokens/s | padding | mean width | real tok/row "
        "| peak RSS MB | CPU util | samples/CPU-s | vs (a), CPU | load (1 min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    per_cpu = {name: median([r["samples_per_cpu_s"] for r in rs]) for name, rs in runs.items()}
    for name, rs in runs.items():
        ratio = f"{speed[name] / speed['a']:.2f}x" if "a" in speed else "-"
        cpu_ratio = f"{per_cpu[name] / per_cpu['a']:.2f}x" if "a" in per_cpu else "-"
        spread = f"{min(r['samples_per_s'] for r in rs):.3g}-{max(r['samples_per_s'] for r in rs):.3g}"
        first = rs[0]
        loads = ", ".join(f"{r['load_at_start']:.1f}" for r in rs)
        lines.append(
            f"| ({name}) | {VARIANTS[name].description} | {speed[name]:.3g} ({spread}) | {ratio} "
            f"| {median([r['real_tokens_per_s'] for r in rs]):,.0f} | {first['padding']:.1%} "
            f"| {first['mean_width']:.1f} | {first['real_tokens_per_row']:.1f} "
            f"| {max(r['peak_rss_mb'] for r in rs):,.0f} | {median([r['cpu_util'] for r in rs]):.2f} "
            f"| {per_cpu[name]:.3g} | {cpu_ratio} | {loads} |"
        )
    return "\n".join(lines)


def wait_for_quiet(max_load: float | None, max_wait: float) -> None:
    """Sleep until the 1-minute load average is under ``max_load`` (or ``max_wait`` seconds have passed)."""
    deadline = time.monotonic() + max_wait
    while max_load is not None and os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 60; 4 with --bert-base)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 5; 1 with --bert-base)")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=None)
    parser.add_argument("--bert-base", action="store_true", help="klue-bert-base-sized random model")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the variants, interleaved")
    parser.add_argument("--max-load", type=float, help="before each run, wait for the 1-min load to fall under this")
    parser.add_argument("--max-wait", type=float, default=300, help="longest wait for --max-load, in seconds")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    model_name = "bert-base" if args.bert_base else "small"
    steps = args.steps or (4 if args.bert_base else 60)
    warmup = args.warmup if args.warmup is not None else (1 if args.bert_base else 5)
    if args.one:
        result = run_variant(VARIANTS[args.one], model_name, steps, warmup, args.workdir, args.tokenizer)
        print(json.dumps(result))
        return
    variants = args.variants or (["a", "e"] if args.bert_base else ["a", "f", "b", "c", "d", "e"])

    command = "python benchmarks/bench_post_training.py " + " ".join(sys.argv[1:])
    started = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_dir = build_tokenizer(Path(tmp) / "tok")
        for name in [name for _ in range(args.repeats) for name in variants]:
            wait_for_quiet(args.max_load, args.max_wait)
            workdir = Path(tmp) / f"{name}{len(results)}"
            workdir.mkdir()
            child = [sys.executable, __file__, "--one", name, "--steps", str(steps), "--warmup", str(warmup)]
            child += ["--workdir", str(workdir), "--tokenizer", str(tokenizer_dir)]
            if args.bert_base:
                child.append("--bert-base")
            out = subprocess.run(child, check=True, capture_output=True, text=True, env=env).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            r = results[-1]
            print(
                f"({name}) {r['samples_per_s']:.3g} samples/s, {r['padding']:.1%} padding, "
                f"{r['peak_rss_mb']:,.0f} MB, {r['seconds']:.0f} s, CPU util {r['cpu_util']:.2f}, "
                f"load {r['load_at_start']:.1f}",
                file=sys.stderr,
                flush=True,
            )
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    settings = dict(MODELS[model_name])
    vocab = settings.pop("vocab_size", None)
    report = "\n".join(
        [
            f"Model: {settings}, vocab {results[0]['vocab_size']:,}"
            + (" (config vocab_size; the 8k tokenizer's ids use the first 8,000 rows)" if vocab else ""),
            f"{results[0]['windows']:,} windows; batch {BATCH_SIZE}, max length {MAX_LENGTH}; "
            f"{warmup} warm-up steps, then {steps} timed steps per run; {args.repeats} run(s) per variant, "
            "interleaved; medians (samples/s: min-max over runs).",
            "",
            table(results, variants),
            "",
            *[
                f"- ({r['variant']}) Python tokenisation: {r['tokenize_s_per_batch']:.3f} s per batch of "
                f"{BATCH_SIZE}, against {r['step_s']:.2f} s per timed step"
                for r in results
                if r.get("tokenize_s_per_batch") is not None
            ],
            f"- command: `{command}`",
            f"- machine: {machine()}",
            f"- date: {started}",
            f"- uptime before: `{uptime_before}`",
            f"- uptime after: `{uptime_after}`",
        ]
    )
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
