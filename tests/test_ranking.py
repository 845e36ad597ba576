"""Tests for ranking.py: ResponseSelector and the mrs-rank CLI, on a tiny random model (CPU, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForPreTraining, BertForSequenceClassification, pipeline

from ko_mrs import ranking
from ko_mrs.preprocessing import EOT_TOKEN
from ko_mrs.ranking import ResponseSelector, main
from ko_mrs.tiny_model import train_wordpiece

SENTENCES = [
    "오늘 학교에서 뭐 했어?",
    "수학 시험 공부했어. 너는?",
    "나는 도서관에서 책 읽었어.",
    "주말에 같이 영화 보러 갈래?",
    "좋아, 토요일 오후 어때?",
    "내일 비가 온대.",
    "점심 메뉴 추천해 줘.",
    "김치찌개 먹으러 가자.",
]
CONTEXT = ["오늘 학교에서 뭐 했어?", "수학 시험 공부했어. 너는?"]
# Different lengths, so batches are padded; one is repeated (ties) and one is long enough to be truncated.
CANDIDATES = [
    "나는 도서관에서 책 읽었어.",
    "내일 비가 온대.",
    "점심 메뉴 추천해 줘. 김치찌개 먹으러 가자. 주말에 같이 영화 보러 갈래? 좋아, 토요일 오후 어때?",
    "좋아",
    "내일 비가 온대.",
]
MAX_LENGTH = 32  # the long candidate (36 tokens with the context) is truncated


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fine-tuned-like checkpoint: 2-class classifier with its tokenizer (which has [EOT])."""
    tokenizer = train_wordpiece(iter(SENTENCES * 3), vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=2,
        id2label={0: "not_next", 1: "next"},
        label2id={"not_next": 0, "next": 1},
        initializer_range=0.5,  # spread-out scores, so the ranking is not decided by rounding noise
    )
    config.mrs_max_length = MAX_LENGTH
    out = tmp_path_factory.mktemp("selector")
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def selector(model_dir: Path) -> ResponseSelector:
    return ResponseSelector.from_pretrained(str(model_dir), device="cpu")


def direct_score(selector: ResponseSelector, context: list[str], candidate: str) -> float:
    """P(next) from one unpadded forward pass on the tokenizer's own pair encoding: no assemble_pair, no batching."""
    encoded = selector.tokenizer(f" {EOT_TOKEN} ".join(context), candidate, return_tensors="pt")
    with torch.no_grad():
        logits = selector.model(**encoded).logits
    return logits.softmax(-1)[0, 1].item()


def assert_same_items(actual: list[dict], expected: list[dict]) -> None:
    """Equal items, ranking scores within 1e-5: batches of other pairs pad differently, which moves the last bits."""
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert {**got, "ranking": None} == {**want, "ranking": None}
        assert [{**e, "score": None} for e in got["ranking"]] == [{**e, "score": None} for e in want["ranking"]]
        assert [e["score"] for e in got["ranking"]] == pytest.approx([e["score"] for e in want["ranking"]], abs=1e-5)


def test_loads_settings_from_the_checkpoint(selector: ResponseSelector) -> None:
    assert selector.max_length == MAX_LENGTH
    assert selector.next_index == 1
    assert selector.device == torch.device("cpu")
    assert not selector.model.training


def test_scores_match_an_independent_forward_pass(selector: ResponseSelector) -> None:
    short = CANDIDATES[:2] + CANDIDATES[3:]  # the long one would be truncated by the selector only
    expected = [direct_score(selector, CONTEXT, candidate) for candidate in short]
    assert selector.score(CONTEXT, short) == pytest.approx(expected, abs=1e-5)


def test_batched_scores_equal_one_at_a_time(selector: ResponseSelector) -> None:
    one_by_one = [selector.score(CONTEXT, [candidate])[0] for candidate in CANDIDATES]
    for batch_size in (1, 2, 32):
        assert selector.score(CONTEXT, CANDIDATES, batch_size=batch_size) == pytest.approx(one_by_one, abs=1e-5)
    assert len(set(one_by_one)) > 2  # the check above is not vacuous


def test_blank_context_turns_are_ignored(selector: ResponseSelector) -> None:
    assert selector.score(["", CONTEXT[0], "  ", CONTEXT[1]], CANDIDATES) == selector.score(CONTEXT, CANDIDATES)


def test_rank_sorts_all_candidates_by_score(selector: ResponseSelector) -> None:
    scores = selector.score(CONTEXT, CANDIDATES)
    ranked = selector.rank(CONTEXT, CANDIDATES)
    assert sorted(entry["corpus_id"] for entry in ranked) == list(range(len(CANDIDATES)))
    assert [entry["score"] for entry in ranked] == sorted(scores, reverse=True)
    assert all(entry["score"] == scores[entry["corpus_id"]] for entry in ranked)
    assert all(set(entry) == {"corpus_id", "score"} for entry in ranked)
    # candidates 1 and 4 are the same text: the tie keeps candidate order
    ids = [entry["corpus_id"] for entry in ranked]
    assert ids.index(1) < ids.index(4)


def test_rank_top_k_and_return_documents(selector: ResponseSelector) -> None:
    full = selector.rank(CONTEXT, CANDIDATES, return_documents=True)
    assert all(entry["text"] == CANDIDATES[entry["corpus_id"]] for entry in full)
    assert selector.rank(CONTEXT, CANDIDATES, top_k=2, return_documents=True) == full[:2]
    assert len(selector.rank(CONTEXT, CANDIDATES, top_k=10)) == len(CANDIDATES)
    with pytest.raises(ValueError, match="top_k"):
        selector.rank(CONTEXT, CANDIDATES, top_k=0)


def test_rank_batch_keeps_items_and_order(selector: ResponseSelector, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranking, "BATCHES_PER_CHUNK", 1)  # several chunks with batch_size=2
    items = [
        {"id": i, "context": CONTEXT[: 1 + i % 2], "candidates": CANDIDATES[i % 3 :], "extra": "kept"} for i in range(6)
    ]
    results = list(selector.rank_batch(items, batch_size=2, top_k=2))
    assert [r["id"] for r in results] == list(range(6))
    expected = [{**item, "ranking": selector.rank(item["context"], item["candidates"], top_k=2)} for item in items]
    assert_same_items(results, expected)
    with pytest.raises(ValueError, match=r"item 1: missing field 'candidates'"):
        list(selector.rank_batch([items[0], {"context": CONTEXT}]))


@pytest.mark.parametrize(
    ("context", "candidates", "error", "message"),
    [
        ([], ["a"], ValueError, "context must contain at least one non-empty utterance"),
        (["", "  "], ["a"], ValueError, "context must contain at least one non-empty utterance"),
        (CONTEXT, [], ValueError, "candidates must contain at least one response"),
        ("오늘 뭐 했어?", ["a"], TypeError, "context must be a list of strings, got str"),
        (CONTEXT, ["a", 3], TypeError, r"candidates\[1\] must be a string, got int"),
        ([None], ["a"], TypeError, r"context\[0\] must be a string"),
    ],
)
def test_bad_inputs_raise_clear_errors(
    selector: ResponseSelector, context: object, candidates: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        selector.rank(context, candidates)  # type: ignore[arg-type]


def test_refuses_a_checkpoint_without_a_trained_classifier(model_dir: Path, tmp_path: Path) -> None:
    config = BertConfig.from_pretrained(model_dir)
    BertForPreTraining(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a fine-tuned response selector: classifier.bias, classifier.weight"):
        ResponseSelector.from_pretrained(str(tmp_path), device="cpu", local_files_only=True)


def test_missing_model_says_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist and is not a Hub repo id"):
        ResponseSelector.from_pretrained(str(tmp_path / "no" / "such" / "model"))
    with pytest.raises(OSError, match="could not load a model from the Hub repo 'nobody/no-such-model'"):
        ResponseSelector.from_pretrained("nobody/no-such-model", local_files_only=True)


def test_pipeline_reports_next_and_not_next(model_dir: Path, selector: ResponseSelector) -> None:
    classifier = pipeline("text-classification", model=str(model_dir), device="cpu")
    text = f" {EOT_TOKEN} ".join(CONTEXT)
    results = classifier({"text": text, "text_pair": CANDIDATES[0]}, top_k=None)
    scores = {result["label"]: result["score"] for result in results}
    assert set(scores) == {"next", "not_next"}
    assert scores["next"] == pytest.approx(selector.score(CONTEXT, CANDIDATES[:1])[0], abs=1e-5)


# ----------------------------------------------------------------------------------------------------------- CLI


def test_cli_prints_a_ranked_table(model_dir: Path, selector: ResponseSelector, capsys: pytest.CaptureFixture) -> None:
    argv = ["--model", str(model_dir), "--device", "cpu", "--context", *CONTEXT, "--candidates", *CANDIDATES]
    assert main([*argv, "--top_k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "score", "text"]
    expected = selector.rank(CONTEXT, CANDIDATES, top_k=3, return_documents=True)
    assert len(lines) == 4
    for rank, (line, entry) in enumerate(zip(lines[1:], expected, strict=True), 1):
        assert line.split(maxsplit=2) == [str(rank), f"{entry['score']:.4f}", entry["text"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--context", "", "--candidates", "네"], "context must contain at least one non-empty utterance"),
        (["--candidates", "네"], "context must contain at least one non-empty utterance"),
        (["--context", "안녕", "--candidates"], "candidates must contain at least one response"),
        (["--context", "안녕"], "candidates must contain at least one response"),
        ([], "nothing to rank"),
        (["--input", "in.jsonl"], "--input and --output go together"),
        (["--context", "안녕", "--input", "in.jsonl", "--output", "out.jsonl"], "give either"),
    ],
)
def test_cli_usage_errors_exit_2(model_dir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--model", str(model_dir), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"mrs-rank: error: {message}")
    assert captured.err.count("\n") == 1


def test_cli_missing_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "runs" / "fine-tune"
    assert main(["--model", str(missing), "--context", "안녕", "--candidates", "네"]) == 2
    err = capsys.readouterr().err
    assert err == f"mrs-rank: error: model not found: {missing} does not exist and is not a Hub repo id\n"


def test_cli_unloadable_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    assert main(["--model", str(tmp_path), "--context", "안녕", "--candidates", "네"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mrs-rank: error: could not load a model from the local path {tmp_path}: ")
    assert err.count("\n") == 1


def test_cli_refused_checkpoint_is_one_line(model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """transformers prints a load report and a progress bar before the refusal; the CLI must print one line only."""
    BertForPreTraining(BertConfig.from_pretrained(model_dir)).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp_path)
    assert main(["--model", str(tmp_path), "--context", "안녕", "--candidates", "네"]) == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert err.startswith("mrs-rank: error: ") and "not a fine-tuned response selector" in err
    assert err.count("\n") == 1, err


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_cli_jsonl_round_trip(
    model_dir: Path, selector: ResponseSelector, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    items = [
        {"id": "a", "context": CONTEXT, "candidates": CANDIDATES},
        {"context": CONTEXT[1:], "candidates": CANDIDATES[:2], "meta": {"source": "test"}},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", [json.dumps(item, ensure_ascii=False) for item in items] + [""])
    output = tmp_path / "out" / "ranked.jsonl"
    argv = ["--model", str(model_dir), "--device", "cpu", "--input", str(source), "--output", str(output)]
    assert main([*argv, "--top_k", "2", "--return_documents"]) == 0
    assert "ranked 2 dialogues" in capsys.readouterr().err
    results = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    expected = [
        {**item, "ranking": selector.rank(item["context"], item["candidates"], top_k=2, return_documents=True)}
        for item in items
    ]
    assert_same_items(results, expected)
    assert sorted(p.name for p in output.parent.iterdir()) == ["ranked.jsonl"]  # no temporary file left


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"context": ["안녕"]}', "in.jsonl:2: missing field 'candidates'"),
        ('{"context": [], "candidates": ["네"]}', "in.jsonl:2: context must contain at least one non-empty utterance"),
        ('{"context": ["안녕"], "candidates": []}', "in.jsonl:2: candidates must contain at least one response"),
        ('{"context": "안녕", "candidates": ["네"]}', "in.jsonl:2: context must be a list of strings, got str"),
        ('{"context": ["안녕"], "candidates": ["네", 1]}', "in.jsonl:2: candidates[1] must be a string, got int"),
        ('["안녕", "네"]', "in.jsonl:2: field '<json>': an item must be a JSON object"),
        ('{"context": ["안녕"], ', "in.jsonl:2: field '<json>': malformed JSON"),
    ],
)
def test_cli_bad_jsonl_line_names_file_line_and_field(
    model_dir: Path, tmp_path: Path, line: str, message: str, capsys: pytest.CaptureFixture
) -> None:
    good = json.dumps({"context": ["안녕"], "candidates": ["네"]}, ensure_ascii=False)
    source = write_jsonl(tmp_path / "in.jsonl", [good, line, good])
    output = tmp_path / "out.jsonl"
    assert main(["--model", str(model_dir), "--input", str(source), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mrs-rank: error: ") and message in err and err.count("\n") == 1
    assert not output.exists()


def test_cli_interrupted_run_leaves_previous_output(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = json.dumps({"context": CONTEXT, "candidates": CANDIDATES}, ensure_ascii=False)
    source = write_jsonl(tmp_path / "in.jsonl", [item] * 3)
    output = tmp_path / "out.jsonl"
    output.write_text("previous run\n", encoding="utf-8")
    rank_batch = ResponseSelector.rank_batch

    def interrupted(self: ResponseSelector, *args: object, **kwargs: object):
        for i, result in enumerate(rank_batch(self, *args, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(ResponseSelector, "rank_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["--model", str(model_dir), "--device", "cpu", "--input", str(source), "--output", str(output)])
    assert output.read_text(encoding="utf-8") == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


@pytest.mark.parametrize("batch_size", [0, -1])
def test_batch_size_below_one_is_an_error_not_the_default(selector: ResponseSelector, batch_size: int) -> None:
    """Issue 9, 3.12: ``batch_size=0`` used to mean "use 32" silently."""
    with pytest.raises(ValueError, match=f"batch_size must be at least 1, got {batch_size}"):
        selector.rank(CONTEXT, CANDIDATES, batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        list(selector.rank_batch([{"context": CONTEXT, "candidates": CANDIDATES}], batch_size=batch_size))


def test_lone_surrogate_is_a_value_error_naming_the_field(selector: ResponseSelector) -> None:
    """Issue 9, 3.2: a lone surrogate reached the tokenizer and came back as a TypeError."""
    with pytest.raises(ValueError, match=r"candidates\[1\] is not valid Unicode"):
        selector.rank(CONTEXT, ["네", "a\ud800b"])
    with pytest.raises(ValueError, match=r"context\[0\] is not valid Unicode"):
        selector.score(["\udc00"], ["네"])


def test_truncated_weights_exit_2_in_one_line(model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Issue 9, 3.11: a truncated model.safetensors gave a SafetensorError traceback."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in model_dir.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(OSError, match=f"could not load a model from the local path {broken}"):
        ResponseSelector.from_pretrained(str(broken))
    assert main(["--model", str(broken), "--context", "안녕", "--candidates", "네"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("mrs-rank: error: could not load a model") and err.count("\n") == 1
    assert "Traceback" not in err
