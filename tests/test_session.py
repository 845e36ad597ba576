"""The same-session module (issue 13): SessionClassifier, its segmentation, the evaluation set and mrs-session.

Why: post-training's URC head becomes a product here, so its probabilities, its thresholds' direction, the
evaluation that reports it and its CLI's error rules must hold on a tiny model in seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer

import run_fine_tuning
from ko_mrs import session
from ko_mrs.dialogue_data import read_dialogues
from ko_mrs.hub import HubArguments, build_model_card
from ko_mrs.preprocessing import add_eot_token
from ko_mrs.session import SessionClassifier, assign_sessions, urc_metrics
from ko_mrs.session_eval import (
    LexicalScorer,
    Stream,
    boundary_metrics,
    chance_segmentation,
    clustering_accuracy,
    concatenated_streams,
    interleaved_streams,
    oracle_context_auc,
)
from modeling_mrs import prepare_model_for_post_training

TRAINING = ["--report_to", "none", "--disable_tqdm", "true", "--max_seq_length", "64", "--save_strategy", "no"]


@pytest.fixture(scope="module")
def untrained_dir(tiny_setup: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT as a post-training checkpoint whose URC head was never trained."""
    out = tmp_path_factory.mktemp("untrained-session")
    tokenizer = AutoTokenizer.from_pretrained(tiny_setup["model"])
    add_eot_token(tokenizer)
    prepare_model_for_post_training(str(tiny_setup["model"]), tokenizer).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def untrained(untrained_dir: Path) -> SessionClassifier:
    return SessionClassifier.from_pretrained(str(untrained_dir), device="cpu")


@pytest.fixture(scope="module")
def test_dialogues(tiny_setup: dict[str, Path]) -> tuple[list[list[str]], list[str]]:
    dialogues, _ = read_dialogues([str(tiny_setup["test"])])
    return dialogues["utterances"], dialogues["id"]


def test_probabilities_sum_to_one(untrained: SessionClassifier) -> None:
    context = ["주말에 뭐 해?", "등산 가려고"]
    probabilities = untrained.predict(context, "어디로?")
    assert list(probabilities) == ["other_dialogue", "same_dialogue", "next"]
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    rows = untrained.probabilities(context, ["어디로?", "배고파"])
    assert rows[0] == pytest.approx(probabilities, abs=1e-6)
    same = untrained.same_session(context, ["어디로?", "배고파"])
    assert same == pytest.approx([1 - row["other_dialogue"] for row in rows], abs=1e-6)


def test_single_dialogue_has_no_boundary_at_a_high_threshold(
    untrained: SessionClassifier, test_dialogues: tuple[list[list[str]], list[str]]
) -> None:
    dialogue = test_dialogues[0][0]
    for interleaved in (False, True):
        result = untrained.segment(dialogue, threshold=0.99, interleaved=interleaved)
        assert result.boundaries == [] and result.labels == [0] * len(dialogue)
        assert result.scores[0] is None and all(0 <= s < 0.99 for s in result.scores[1:])
    # the other direction: at a threshold below every P(other dialogue), each utterance opens a session
    low = untrained.segment(dialogue, threshold=0.01)
    assert low.boundaries == list(range(1, len(dialogue))) and low.labels == list(range(len(dialogue)))


def test_untrained_head_scores_near_chance_on_the_built_set(
    untrained: SessionClassifier, test_dialogues: tuple[list[list[str]], list[str]]
) -> None:
    """With the true sessions as context the random head's AUC is near 0.5, where TF-IDF finds the set's signal."""
    texts, ids = test_dialogues
    streams = interleaved_streams(texts, ids, num_streams=8, seed=0)
    streams += concatenated_streams(texts, ids, num_streams=8, seed=0)

    lexical = LexicalScorer([u for d in texts for u in d])
    assert abs(oracle_context_auc(streams, lambda s: untrained.stream_scorer(s.utterances), 3) - 0.5) < 0.1
    assert oracle_context_auc(streams, lambda s: lexical.for_stream(s.utterances), 3) > 0.6


def test_greedy_segmentation_recovers_sessions_from_an_oracle() -> None:
    labels = [0, 1, 0, 0, 1, 1, 0]

    def oracle(contexts, i):
        return [0.0 if labels[c[-1]] == labels[i] else 1.0 for c in contexts]

    interleaved = assign_sessions(len(labels), oracle, threshold=0.5, interleaved=True)
    assert interleaved.labels == labels and interleaved.boundaries == [1, 2, 4, 6]
    # contiguous: a session never reopens, so each switch opens a new one
    assert assign_sessions(len(labels), oracle, threshold=0.5).labels == [0, 1, 2, 2, 3, 3, 4]
    capped = assign_sessions(len(labels), oracle, threshold=0.5, max_sessions=1)
    assert capped.labels == [0] * len(labels)
    with pytest.raises(ValueError, match="threshold"):
        assign_sessions(3, oracle, threshold=1.0)


def test_built_streams_keep_each_dialogue_whole_and_in_order(
    test_dialogues: tuple[list[list[str]], list[str]],
) -> None:
    texts, ids = test_dialogues
    by_id = dict(zip(ids, texts, strict=True))
    for stream in concatenated_streams(texts, ids, num_streams=20, seed=3):
        assert 2 <= len(stream.dialogue_ids) <= 5 and len(stream.boundaries) == len(stream.dialogue_ids) - 1
        assert stream.utterances == [u for d in stream.dialogue_ids for u in by_id[d]]
    for stream in interleaved_streams(texts, ids, num_streams=20, seed=3):
        assert stream.labels[0] == 0 and set(stream.labels) == {0, 1}
        for k, dialogue_id in enumerate(stream.dialogue_ids):
            assert [u for u, label in zip(stream.utterances, stream.labels, strict=True) if label == k] == by_id[
                dialogue_id
            ]


def test_segmentation_metrics() -> None:
    stream = Stream([f"u{i}" for i in range(12)], [0] * 4 + [1] * 4 + [2] * 4, ["a", "b", "c"])
    perfect = boundary_metrics([stream], [[4, 8]])
    assert perfect.f1 == 1.0 and perfect.pk == 0.0 and perfect.windowdiff == 0.0
    none = boundary_metrics([stream], [[]])
    assert none.f1 == 0.0 and none.pk > 0.3 and none.windowdiff > 0.3
    near = boundary_metrics([stream], [[5, 8]])
    assert near.f1 == 0.5 and 0 < near.pk < none.pk  # P_k credits a near miss; exact F1 does not
    assert clustering_accuracy([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0  # cluster names do not matter
    assert clustering_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == 0.5  # extra clusters count as wrong
    chance = chance_segmentation(stream, random.Random(0), interleaved=False)
    assert chance.labels[0] == 0 and len(chance.labels) == 12


def test_urc_metrics_per_class_and_auc() -> None:
    import numpy as np

    logits = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [0, 3.0, 0]])
    metrics = urc_metrics(logits, np.array([0, 1, 2, 2]))
    assert metrics["urc_accuracy"] == 0.75 and metrics["urc_accuracy_class_2"] == 0.5
    assert metrics["same_session_auc"] == 1.0  # every same-session pair is above the other-dialogue one


def test_refuses_a_checkpoint_without_a_urc_head(tiny_setup: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="has no trained URC head: bert.pooler|has no trained URC head: urc"):
        SessionClassifier.from_pretrained(str(tiny_setup["model"]), device="cpu")


def test_cli_round_trip(untrained_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "a", "context": ["안녕", "뭐 해?"], "utterances": ["밥 먹어", "비 와"]}) + "\n")
    assert (
        session.main(["score", "--model", str(untrained_dir), "--input", str(pairs), "--output", str(tmp_path / "s")])
        == 0
    )
    scored = json.loads((tmp_path / "s").read_text())
    assert scored["id"] == "a" and len(scored["same_session"]) == 2 and len(scored["probabilities"]) == 2
    streams = tmp_path / "streams.jsonl"
    streams.write_text(json.dumps({"utterances": ["안녕", "뭐 해?", "밥 먹어"]}) + "\n")
    argv = ["segment", "--model", str(untrained_dir), "--input", str(streams), "--output", str(tmp_path / "g")]
    assert session.main([*argv, "--threshold", "0.99", "--interleaved"]) == 0
    segmented = json.loads((tmp_path / "g").read_text())
    assert segmented["sessions"] == [0, 0, 0] and segmented["boundaries"] == [] and segmented["scores"][0] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "1.5"], "argument --threshold: must be between 0 and 1"),
        (["--max_sessions", "0"], "argument --max_sessions: must be at least 1"),
    ],
)
def test_cli_argument_errors_exit_2(
    untrained_dir: Path, tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    streams = tmp_path / "streams.jsonl"
    streams.write_text(json.dumps({"utterances": ["a", "b"]}) + "\n")
    argv = ["segment", "--model", str(untrained_dir), "--input", str(streams), "--output", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exit_info:
        session.main([*argv, *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_model_without_urc_head_exits_2(tiny_setup: dict[str, Path], tmp_path: Path, capfd) -> None:
    streams = tmp_path / "streams.jsonl"
    streams.write_text(json.dumps({"utterances": ["a", "b"]}) + "\n")
    out = tmp_path / "o.jsonl"
    code = session.main(["segment", "--model", str(tiny_setup["model"]), "--input", str(streams), "--output", str(out)])
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "has no trained URC head" in lines[0] and not out.exists()


def test_fine_tuning_task_session_trains_evaluates_and_writes_the_card(
    tiny_setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "session"
    metrics = run_fine_tuning.run(
        [
            "--task", "session", "--model_name_or_path", str(tiny_setup["model"]), "--output_dir", str(out),
            "--train_files", str(tiny_setup["train"]), "--validation_files", str(tiny_setup["validation"]),
            "--do_train", "--do_eval", "--max_steps", "20", "--learning_rate", "1e-3",
            "--per_device_train_batch_size", "16", *TRAINING,
        ]
    )  # fmt: skip
    assert {"eval_urc_accuracy_class_0", "eval_urc_accuracy_class_2", "eval_same_session_auc"} <= set(metrics)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "### Same-session judgement" in card and "| same-session AUC (1 - P(another dialogue)) | " in card
    assert f"{metrics['eval_same_session_auc']:.4f}" in card
    classifier = SessionClassifier.from_pretrained(str(out), device="cpu")
    assert classifier.max_length == 64 and classifier.context_turns == 3


def test_post_training_card_shows_session_usage_and_accuracy(tmp_path: Path) -> None:
    from transformers import TrainingArguments

    metrics = {"eval_urc_accuracy_class_0": 0.9, "eval_urc_accuracy_class_1": 0.4, "eval_same_session_auc": 0.81}
    card = build_model_card(
        stage="post-training",
        repo_id="me/pt",
        base_model="klue/bert-base",
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none"),
        settings={},
        hub_args=HubArguments(),
        health={"metrics": metrics},
    ).content
    assert 'SessionClassifier.from_pretrained("me/pt")' in card and "| same-session AUC" in card
    assert "| accuracy, the next one | 0.4000 |" in card  # no class 2: the 2-class head's class 1 is "next"
