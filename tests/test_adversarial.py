"""Adversarial negatives: each Korean perturbation on fixed examples, the suite builder and the evaluator."""

from __future__ import annotations

import doctest
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ko_mrs import adversarial
from ko_mrs.adversarial import (
    TYPES,
    evaluate_adversarial,
    interrogative,
    lexical_contradiction,
    make_adversarial_suite,
    negation,
    read_adversarial_files,
    repetition,
    subject_object_swap,
    tense,
    topic,
)

ROOT = Path(__file__).resolve().parents[1]

# (perturbation, input, expected output): hand-checked Korean, the output grammatical and meaning something else
EXAMPLES = [
    (negation, "재고가 있어요.", "재고가 없어요."),
    (negation, "저는 내일 학교에 가요.", "저는 내일 학교에 안 가요."),
    (negation, "그 영화는 아직 못 봤어요.", "그 영화는 아직 봤어요."),
    (negation, "오늘은 별로 춥지 않아요.", "오늘은 별로 추워요."),
    (negation, "저는 학생입니다.", "저는 학생이 아닙니다."),
    (negation, "언제든 문의해 주세요.", "언제든 문의해 주지 마세요."),
    (tense, "출고까지 3주 정도 걸려요.", "출고까지 3주 정도 걸렸어요."),
    (tense, "어제 비가 왔어요.", "어제 비가 와요."),
    (tense, "내일 비가 올 거예요.", "내일 비가 왔어요."),
    (subject_object_swap, "동생이 고양이를 좋아해요.", "고양이가 동생을 좋아해요."),
    (subject_object_swap, "나는 수영을 주 4번 하고 있어.", "수영은 나를 주 4번 하고 있어."),
    (lexical_contradiction, "이 차는 트렁크가 커서 좋아요.", "이 차는 트렁크가 커서 싫어요."),
    (lexical_contradiction, "그 집 칼국수는 정말 맛있어.", "그 집 칼국수는 정말 맛없어."),
    (interrogative, "견적서를 준비했습니다.", "견적서를 준비했습니까?"),
    (interrogative, "그 식당 음식이 맛있어요?", "그 식당 음식이 맛있어요."),
]


@pytest.mark.parametrize(("perturb", "text", "expected"), EXAMPLES, ids=[f"{f.__name__}-{t}" for f, t, _ in EXAMPLES])
def test_perturbation_on_a_fixed_example(perturb, text: str, expected: str) -> None:
    out = perturb(text)
    assert out == expected
    assert out != text


def test_the_docstring_examples_hold() -> None:
    failures, tried = doctest.testmod(adversarial)
    assert tried >= 15 and failures == 0


def test_untouched_words_keep_their_spacing() -> None:
    # Kiwi would re-space "쌀국수집" and "가 봐야 할"; only the eojeol that changes is re-joined
    assert negation("쌀국수집에 가 봐야 할 것 같아. 회사 앞에 새로 생겼어.") == (
        "쌀국수집에 가 봐야 할 것 같아. 회사 앞에 새로 안 생겼어."
    )


def test_rules_that_do_not_apply_give_none() -> None:
    assert subject_object_swap("네, 좋아요.") is None  # no subject and object
    assert lexical_contradiction("네, 알겠습니다.") is None  # no antonym
    assert tense("내일 갈게요.") is None  # a promise takes no past
    assert repetition("안녕하세요.", ["안녕하세요."]) is None  # the only earlier turn is the reply itself


def test_repetition_and_topic_take_the_context_words() -> None:
    context = ["어떤 차를 사야 할지 모르겠어요.", "차는 오래 타니까 신중하게 골라야 해요."]
    assert repetition("네, 신중히 고를게요.", context) == context[0]
    assert (
        topic("네, 신중히 고를게요.", context, ["저는 농구를 좋아합니다."], random.Random(0)) == "저는 차를 좋아합니다."
    )


def _dialogues() -> list[dict]:
    return [
        {"id": "a", "utterances": ["재고가 있어요?", "네, 재고가 있어요.", "그럼 내일 갈게요.", "내일 오시면 돼요."]},
        {"id": "b", "utterances": ["동생이 뭘 좋아해?", "동생이 고양이를 좋아해요.", "고양이는 귀여워요."]},
        {"id": "c", "utterances": ["저녁 뭐 먹을래?", "그 집 칼국수는 정말 맛있어.", "좋아, 칼국수 먹자."]},
    ]


def test_the_suite_is_reproducible_and_every_false_reply_differs_from_the_true_one() -> None:
    pairs = make_adversarial_suite(_dialogues(), seed=3)
    assert pairs == make_adversarial_suite(_dialogues(), seed=3)
    assert {p.type for p in pairs} <= set(TYPES) and {"negation", "repetition", "tense"} <= {p.type for p in pairs}
    for pair in pairs:
        assert pair.false != pair.true
        dialogue = next(d for d in _dialogues() if d["id"] == pair.dialogue_id)
        assert pair.true == dialogue["utterances"][pair.position]
        assert pair.context == dialogue["utterances"][: pair.position]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_evaluator_counts_pairs_per_type_and_ties_as_wrong(tmp_path: Path) -> None:
    def record(true: str, false: list[str], kind: str | None = None) -> dict:
        out = {"context": ["재고가 있어요?"], "candidates": [{"text": true, "label": 1}]}
        out["candidates"] += [{"text": f, "label": 0} for f in false]
        return out | ({"type": kind} if kind else {})

    path = _write(
        tmp_path / "negation.jsonl",  # records without "type" take the file's name
        [record("long true reply", ["short"]), record("short", ["long false reply"]), record("tie", ["tie!"])],
    )
    other = _write(tmp_path / "x.jsonl", [record("a b c", ["a", "a b"], "tense")])
    records = read_adversarial_files([path, other])
    report = evaluate_adversarial(records, lambda context, texts: [float(len(t.split())) for t in texts])
    assert report.types["negation"].pairs == 3 and report.types["negation"].correct == 1  # the tie is wrong
    assert report.types["tense"].pairs == 2 and report.types["tense"].correct == 2
    assert report.overall.pairs == 5 and report.overall.accuracy == pytest.approx(3 / 5)
    assert report.metrics()["adversarial_negation_accuracy"] == pytest.approx(1 / 3)
    constant = evaluate_adversarial(records, lambda context, texts: [0.5] * len(texts))
    assert constant.overall.accuracy == 0.0  # a constant scorer ties everything


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"context": [], "candidates": []}', "context"),
        ('{"context": ["a"], "candidates": [{"text": "b", "label": 1}]}', "candidates"),
        ('{"context": ["a"], "candidates": [{"text": "b", "label": true}, {"text": "c", "label": 0}]}', "candidates"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not JSON"),
    ],
)
def test_bad_suite_lines_are_one_line_errors(tmp_path: Path, line: str, field: str) -> None:
    path = tmp_path / "suite.jsonl"
    path.write_text('{"context": ["a"], "candidates": [{"text": "b", "label": 1}, {"text": "c", "label": 0}]}\n' + line)
    result = subprocess.run(
        [sys.executable, "-m", "ko_mrs.adversarial", "adversarial", str(path), "--model", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"{path}:2" in result.stderr and field in result.stderr
    assert "Traceback" not in result.stderr


def test_fine_tuning_scores_adversarial_files_into_results_and_model_index(
    tiny_setup: dict[str, Path], tmp_path: Path
) -> None:
    """``--adversarial_files``: per-type accuracy beside BM25 is saved and the card's model-index carries it; the
    run trains with generated adversarial negatives too (``--adversarial_negative_ratio``)."""
    import run_fine_tuning

    suite = _write(
        tmp_path / "suite.jsonl",
        [
            {
                "context": ["차를 사려고 해요.", "어떤 차를 보세요?"],
                "candidates": [
                    {"text": "SUV를 보고 있어요.", "label": 1},
                    {"text": "SUV를 안 보고 있어요.", "label": 0},
                ],
                "type": "negation",
            },
            {
                "context": ["날씨가 어때요?"],
                "candidates": [{"text": "비가 와요.", "label": 1}, {"text": "비가 왔어요.", "label": 0}],
                "type": "tense",
            },
        ],
    )
    out = tmp_path / "fine"
    run_fine_tuning.run(
        [
            "--model_name_or_path", str(tiny_setup["model"]), "--train_files", str(tiny_setup["train"]),
            "--adversarial_files", str(suite), "--adversarial_negative_ratio", "0.5",
            "--output_dir", str(out), "--do_train", "--max_steps", "2",
            "--max_seq_length", "64", "--report_to", "none", "--disable_tqdm", "true",
        ]
    )  # fmt: skip
    results = json.loads((out / "adversarial_results.json").read_text(encoding="utf-8"))
    assert set(results) == {
        "negation_accuracy", "negation_bm25_accuracy", "tense_accuracy", "tense_bm25_accuracy",
        "accuracy", "bm25_accuracy",
    }  # fmt: skip
    assert results["accuracy"] == pytest.approx((results["negation_accuracy"] + results["tense_accuracy"]) / 2)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "type: accuracy_negation" in card and "type: accuracy_tense" in card
    assert "| overall |" in card and "### Adversarial suite" in card
    assert "| adversarial_negative_ratio | 0.5 |" in card


def test_a_bad_adversarial_file_stops_fine_tuning_before_training(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "suite.jsonl"
    path.write_text('{"context": ["a"], "candidates": [{"text": "b", "label": 1}]}\n', encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable, "run_fine_tuning.py", "--model_name_or_path", str(tiny_setup["model"]),
            "--train_files", str(tiny_setup["train"]), "--adversarial_files", str(path),
            "--output_dir", str(tmp_path / "out"), "--do_train", "--max_steps", "1", "--report_to", "none",
        ],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and f"{path}:1" in result.stderr and "candidates" in result.stderr
    assert not (tmp_path / "out" / "checkpoint-1").exists()
