"""run_post_training.py end to end on a tiny offline model: logging, evaluation, saving, resume, 2 processes."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

import run_post_training
from ko_mrs.dialogue_data import DialogueFormatError


def base_args(setup: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(setup["model"]),
        "--train_files", str(setup["train"]),
        "--validation_files", str(setup["validation"]),
        "--output_dir", str(output_dir),
        "--max_seq_length", "64",
        "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "16",
        "--learning_rate", "1e-3",
        "--report_to", "none",
        "--disable_tqdm", "true",
        "--seed", "7",
        *extra,
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_history(output_dir: Path) -> list[dict]:
    return json.loads((output_dir / "trainer_state.json").read_text())["log_history"]


def test_two_urc_labels_alone_default_their_probabilities(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    """`--num_urc_labels 2` needs no `--urc_probabilities`: NSP-style draws default to 50/50."""
    out = tmp_path / "nsp"
    metrics = run_post_training.run(
        base_args(tiny_setup, out, "--do_train", "--do_eval", "--max_steps", "2", "--num_urc_labels", "2")
    )
    assert {"eval_urc_accuracy_class_0", "eval_urc_accuracy_class_1"} <= metrics.keys()
    assert "eval_urc_accuracy_class_2" not in metrics
    assert "| urc_probabilities | [0.5, 0.5] |" in (out / "README.md").read_text(encoding="utf-8")


def test_mlm_only_evaluation_keeps_its_placeholder_on_the_batch_device(
    tiny_setup: dict[str, Path], tmp_path: Path
) -> None:
    """Without a URC head, evaluation still gathers (a zero URC column made beside the batch) and reports MLM."""
    metrics = run_post_training.run(
        base_args(tiny_setup, tmp_path / "mlm", "--do_eval", "--urc_loss_weight", "0", "--max_eval_samples", "16")
    )
    assert metrics["eval_mlm_perplexity"] > 1 and "eval_urc_accuracy" not in metrics


def test_post_training_logs_evaluates_and_saves(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    metrics = run_post_training.run(
        base_args(tiny_setup, out, "--do_train", "--do_eval", "--max_steps", "6", "--logging_steps", "2")
    )
    logged = [entry for entry in log_history(out) if "loss" in entry]
    assert len(logged) == 3
    for entry in logged:
        assert {"mlm_loss", "urc_loss", "urc_accuracy"} <= entry.keys()
        assert 0 <= entry["urc_accuracy"] <= 1 and entry["mlm_loss"] > 0 and entry["urc_loss"] > 0
    for key in ("eval_urc_accuracy", "eval_mlm_perplexity", *(f"eval_urc_accuracy_class_{c}" for c in range(3))):
        assert key in metrics
    assert metrics["eval_mlm_perplexity"] > 1
    assert (out / "model.safetensors").is_file() and (out / "modeling_mrs.py").is_file()
    assert (out / "eval_results.json").is_file() and (out / "train_results.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert" and "AutoModelForPreTraining" in config["auto_map"]
    assert "[EOT]" in AutoTokenizer.from_pretrained(out).all_special_tokens
    encoder = AutoModel.from_pretrained(out)
    classifier = AutoModelForSequenceClassification.from_pretrained(out)
    for name, tensor in encoder.state_dict().items():
        assert (classifier.bert.state_dict()[name] == tensor).all(), name


def test_evaluation_draws_are_fixed(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    """Two evaluations of the same model score the same candidates and masks."""
    out = tmp_path / "eval"
    first = run_post_training.run(base_args(tiny_setup, out, "--do_eval"))
    second = run_post_training.run(base_args(tiny_setup, out, "--do_eval"))
    assert first["eval_urc_accuracy"] == second["eval_urc_accuracy"]
    assert first["eval_mlm_perplexity"] == pytest.approx(second["eval_mlm_perplexity"], rel=1e-6)


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


class Interrupted(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_end(
    tiny_setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("--do_train", "--max_steps", "8", "--save_steps", "2", "--logging_steps", "1")
    straight = tmp_path / "straight"
    run_post_training.run(base_args(tiny_setup, straight, *args))

    resumed = tmp_path / "resumed"
    original_step = run_post_training.PostTrainingTrainer.training_step

    def crash_at_step_5(self, *a, **k):
        if self.state.global_step == 5:
            raise Interrupted("simulated preemption")
        return original_step(self, *a, **k)

    monkeypatch.setattr(run_post_training.PostTrainingTrainer, "training_step", crash_at_step_5)
    with pytest.raises(Interrupted):
        run_post_training.run(base_args(tiny_setup, resumed, *args))
    monkeypatch.setattr(run_post_training.PostTrainingTrainer, "training_step", original_step)
    finished = {name: file_hashes(resumed / name) for name in ("checkpoint-2", "checkpoint-4")}
    assert not (resumed / "checkpoint-6").exists()

    run_post_training.run(base_args(tiny_setup, resumed, *args))  # finds checkpoint-4 and resumes
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    for name, hashes in finished.items():
        assert file_hashes(resumed / name) == hashes, f"{name} changed on resume"
    losses = {e["step"]: e["loss"] for e in log_history(resumed) if "loss" in e}
    reference = {e["step"]: e["loss"] for e in log_history(straight) if "loss" in e}
    assert set(losses) >= {5, 6, 7, 8}
    for step in (5, 6, 7, 8):
        assert losses[step] == pytest.approx(reference[step], rel=1e-3), step


@pytest.mark.slow
def test_two_processes_match_one(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    """torchrun with 2 gloo processes x batch 4 logs the same losses as 1 process x batch 8, not twice them."""
    common = (
        "--do_train", "--max_steps", "3", "--logging_steps", "1", "--train_sampling_strategy", "sequential",
        "--config_overrides", "hidden_dropout_prob=0,attention_probs_dropout_prob=0",
    )  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    one = tmp_path / "one"
    subprocess.run(
        [sys.executable, str(ROOT / "run_post_training.py"), *base_args(tiny_setup, one, *common)],
        check=True, env=env, cwd=ROOT, capture_output=True,
    )  # fmt: skip
    two = tmp_path / "two"
    args = base_args(tiny_setup, two, *common, "--log_level", "info")
    args[args.index("--per_device_train_batch_size") + 1] = "4"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(ROOT / "run_post_training.py"), *args],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Total train batch size (w. parallel, distributed & accumulation) = 8" in result.stdout + result.stderr
    single = [e for e in log_history(one) if "loss" in e]
    double = [e for e in log_history(two) if "loss" in e]
    assert [e["step"] for e in double] == [1, 2, 3]
    for a, b in zip(single, double, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=0.05), (a, b)
        assert b["urc_loss"] == pytest.approx(a["urc_loss"], rel=0.05)


def test_bad_training_file_stops_with_file_and_line(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "utterances": ["하나", "둘"]}\n{"id": "b", "utterances": ["셋", 4]}\n', "utf-8")
    args = base_args(tiny_setup, tmp_path / "out", "--do_train")
    args[args.index("--train_files") + 1] = str(bad)
    with pytest.raises(DialogueFormatError, match=rf"{bad}:2: field 'utterances\[1\]': must be a string"):
        run_post_training.run(args)
    args[args.index("--train_files") + 1] = str(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match="missing.jsonl: no such file"):
        run_post_training.run(args)
