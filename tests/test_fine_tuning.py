"""run_fine_tuning.py: the chance-level sanity check, id-matched scoring, and the whole pipeline end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from transformers import EarlyStoppingCallback

import run_fine_tuning
import run_post_training
from ko_mrs.dialogue_data import build_eval_groups, read_dialogues, write_jsonl
from ko_mrs.ranking import ResponseSelector
from ko_mrs.training import early_stopping


@pytest.fixture(scope="module")
def many_groups(tiny_setup: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1,000 1-in-10 groups over the tiny corpus, so chance is measured to about +-0.01."""
    files = [tiny_setup[s] for s in ("train", "validation", "test")]
    dialogues, _ = read_dialogues(files)
    groups = []
    for seed in range(9):
        for group in build_eval_groups(dialogues, seed=seed):
            groups.append({**group, "group_id": f"s{seed}/{group['group_id']}"})
    return write_jsonl(groups, tmp_path_factory.mktemp("groups") / "many.jsonl")


def predict(model: Path, groups: Path, output_dir: Path, *extra: str) -> dict[str, float]:
    return run_fine_tuning.run(
        [
            "--model_name_or_path", str(model),
            "--do_predict",
            "--test_groups", str(groups),
            "--output_dir", str(output_dir),
            "--per_device_eval_batch_size", "64",
            "--max_seq_length", "64",
            "--report_to", "none",
            "--disable_tqdm", "true",
            *extra,
        ]
    )  # fmt: skip


def test_untrained_model_scores_chance(tiny_setup: dict[str, Path], many_groups: Path, tmp_path: Path) -> None:
    """A randomly initialised model must score about 1/10 R10@1: a misaligned scorer would not."""
    metrics = predict(tiny_setup["model"], many_groups, tmp_path / "untrained")
    assert metrics["test_num_groups"] >= 1000
    assert metrics["test_r10@1"] == pytest.approx(0.1, abs=0.035)
    assert metrics["test_mrr"] == pytest.approx(0.293, abs=0.04)  # E[1/rank] for a uniform rank in 1..10


def test_scores_follow_group_ids_not_row_order(tiny_setup: dict[str, Path], many_groups: Path, tmp_path: Path) -> None:
    """Length-grouped evaluation reorders rows; the metrics and the per-candidate predictions must not change."""
    plain = predict(tiny_setup["model"], many_groups, tmp_path / "plain")
    grouped = predict(
        tiny_setup["model"], many_groups, tmp_path / "grouped", "--train_sampling_strategy", "group_by_length"
    )
    for key in ("test_r10@1", "test_r10@2", "test_r10@5", "test_mrr", "test_map"):
        assert grouped[key] == pytest.approx(plain[key], abs=1e-6), key

    def by_candidate(path: Path) -> dict[tuple[str, int], float]:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return {(r["group_id"], r["candidate_index"]): r["score"] for r in rows}

    first = by_candidate(tmp_path / "plain" / "test_predictions.jsonl")
    second = by_candidate(tmp_path / "grouped" / "test_predictions.jsonl")
    assert first.keys() == second.keys() and len(first) == plain["test_num_rows"]
    assert all(abs(first[k] - second[k]) < 1e-5 for k in first)
    groups = {g["group_id"]: g for g in map(json.loads, many_groups.read_text(encoding="utf-8").splitlines())}
    for line in (tmp_path / "plain" / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()[:50]:
        row = json.loads(line)
        group = groups[row["group_id"]]
        assert group["candidates"][row["candidate_index"]] == row["candidate"]
        assert group["labels"][row["candidate_index"]] == row["label"]


def test_end_to_end_post_train_fine_tune_evaluate_rank(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    """Post-train, fine-tune, evaluate and rank on tiny data; the fine-tuned model beats the untrained one.

    A BERT trained from scratch at test scale does not generalise to held-out dialogues (BENCHMARKS.md), so
    the groups are built from the 12 training dialogues: a model that learned its pairs must rank their true
    responses high, which only happens if training, scoring and the group-id matching all connect.
    """
    small = tmp_path / "small" / "train.jsonl"
    small.parent.mkdir()
    small.write_text("\n".join(tiny_setup["train"].read_text(encoding="utf-8").splitlines()[:12]) + "\n", "utf-8")
    dialogues, _ = read_dialogues(small)
    groups = [{**g, "group_id": f"{s}/{g['group_id']}"} for s in range(8) for g in build_eval_groups(dialogues, seed=s)]
    group_file = write_jsonl(groups, tmp_path / "groups.jsonl")
    common = ["--max_seq_length", "64", "--report_to", "none", "--disable_tqdm", "true", "--seed", "3"]
    post = tmp_path / "post"
    run_post_training.run(
        [
            "--model_name_or_path", str(tiny_setup["model"]),
            "--train_files", str(small),
            "--output_dir", str(post),
            "--do_train", "--max_steps", "20", "--learning_rate", "1e-3",
            "--per_device_train_batch_size", "16",
            *common,
        ]
    )  # fmt: skip
    fine = tmp_path / "fine"
    metrics = run_fine_tuning.run(
        [
            "--model_name_or_path", str(post),
            "--train_files", str(small),
            "--validation_groups", str(group_file),
            "--test_groups", str(group_file),
            "--output_dir", str(fine),
            "--do_train", "--do_eval", "--do_predict",
            "--max_steps", "300", "--learning_rate", "1e-3", "--lr_scheduler_type", "constant",
            "--weight_decay", "0.01",
            "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64",
            "--eval_strategy", "steps", "--eval_steps", "150", "--save_steps", "150",
            "--load_best_model_at_end", "true",
            *common,
        ]
    )  # fmt: skip
    untrained = predict(tiny_setup["model"], group_file, tmp_path / "untrained")
    assert metrics["test_num_groups"] == untrained["test_num_groups"] == len(groups)
    assert metrics["test_r10@1"] > untrained["test_r10@1"] + 0.2, (metrics["test_r10@1"], untrained["test_r10@1"])
    assert metrics["test_mrr"] > untrained["test_mrr"]
    assert metrics["eval_r10@1"] == pytest.approx(metrics["test_r10@1"])  # the best checkpoint was reloaded
    assert "test_bm25_r10@1" in metrics
    assert (fine / "test_predictions.jsonl").is_file() and (fine / "test_results.json").is_file()

    selector = ResponseSelector.from_pretrained(str(fine), device="cpu")
    ranking = selector.rank(groups[0]["context"], groups[0]["candidates"], return_documents=True)
    assert sorted(hit["corpus_id"] for hit in ranking) == list(range(10))
    assert [hit["score"] for hit in ranking] == sorted((hit["score"] for hit in ranking), reverse=True)
    probabilities = selector.score(groups[0]["context"], groups[0]["candidates"])
    predictions = [json.loads(line) for line in (fine / "test_predictions.jsonl").read_text("utf-8").splitlines()]
    ours = sorted(
        (p for p in predictions if p["group_id"] == groups[0]["group_id"]), key=lambda p: p["candidate_index"]
    )
    assert probabilities == pytest.approx([p["probability"] for p in ours], abs=1e-5)


def test_info_logs_print_and_unused_group_files_are_not_read(
    tiny_setup: dict[str, Path], many_groups: Path, tmp_path: Path
) -> None:
    """Issue 9, 3.15 and 3.16: a config may name group files for stages that do not run (they are not read, so a
    missing one does not stop the run), and the script's own info logs (pair counts, the metrics table) print."""
    config = tmp_path / "fine.yaml"
    config.write_text(
        yaml.safe_dump({"validation_groups": str(tmp_path / "not-written-yet.jsonl"), "test_groups": str(many_groups)}),
        encoding="utf-8",
    )
    args = [
        str(config), "--model_name_or_path", str(tiny_setup["model"]), "--train_files", str(tiny_setup["train"]),
        "--output_dir", str(tmp_path / "run"), "--do_train", "--do_eval", "false", "--max_steps", "1",
        "--max_seq_length", "64", "--report_to", "none", "--disable_tqdm", "true", "--log_level", "info",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "run_fine_tuning.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"INFO - __main__ - \d+ training pairs from \d+ dialogues", result.stdout), result.stdout[-3000:]
    assert "read " in result.stdout and "not-written-yet" not in result.stdout + result.stderr
    assert not (tmp_path / "run" / "test_predictions.jsonl").exists()  # --do_predict was not asked for


def test_early_stopping_patience_becomes_the_callback() -> None:
    assert early_stopping(None) == []
    (callback,) = early_stopping(3)
    assert isinstance(callback, EarlyStoppingCallback) and callback.early_stopping_patience == 3
