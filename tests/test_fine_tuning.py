"""run_fine_tuning.py: the chance-level sanity check, id-matched scoring, and the whole pipeline end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import run_fine_tuning
import run_post_training
from dialogue_data import build_eval_groups, read_dialogues, write_jsonl
from ranking import ResponseSelector


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


def test_end_to_end_post_train_fine_tune_evaluate_rank(
    tiny_setup: dict[str, Path], many_groups: Path, tmp_path: Path
) -> None:
    """Post-train, fine-tune, evaluate and rank; the fine-tuned model beats the untrained one on the same groups."""
    common = ["--max_seq_length", "64", "--report_to", "none", "--disable_tqdm", "true", "--seed", "3"]
    post = tmp_path / "post"
    run_post_training.run(
        [
            "--model_name_or_path", str(tiny_setup["model"]),
            "--train_files", str(tiny_setup["train"]),
            "--output_dir", str(post),
            "--do_train", "--max_steps", "30", "--learning_rate", "1e-3",
            "--per_device_train_batch_size", "16",
            *common,
        ]
    )  # fmt: skip
    validation = tmp_path / "validation.jsonl"
    validation_dialogues, _ = read_dialogues(tiny_setup["validation"])
    write_jsonl(build_eval_groups(validation_dialogues, seed=0), validation)
    fine = tmp_path / "fine"
    metrics = run_fine_tuning.run(
        [
            "--model_name_or_path", str(post),
            "--train_files", str(tiny_setup["train"]),
            "--validation_groups", str(validation),
            "--test_groups", str(many_groups),
            "--output_dir", str(fine),
            "--do_train", "--do_eval", "--do_predict",
            "--max_steps", "250", "--learning_rate", "2e-3", "--warmup_steps", "10",
            "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "64",
            "--eval_strategy", "steps", "--eval_steps", "125", "--save_steps", "125",
            "--load_best_model_at_end", "true",
            *common,
        ]
    )  # fmt: skip
    untrained = predict(tiny_setup["model"], many_groups, tmp_path / "untrained")
    assert metrics["test_r10@1"] > untrained["test_r10@1"] + 0.05, (metrics["test_r10@1"], untrained["test_r10@1"])
    assert metrics["test_mrr"] > untrained["test_mrr"]
    assert "eval_r10@1" in metrics and "test_bm25_r10@1" in metrics
    assert (fine / "test_predictions.jsonl").is_file() and (fine / "test_results.json").is_file()

    selector = ResponseSelector.from_pretrained(str(fine), device="cpu")
    group = json.loads(many_groups.read_text(encoding="utf-8").splitlines()[0])
    ranking = selector.rank(group["context"], group["candidates"], return_documents=True)
    assert sorted(hit["corpus_id"] for hit in ranking) == list(range(10))
    assert [hit["score"] for hit in ranking] == sorted((hit["score"] for hit in ranking), reverse=True)
