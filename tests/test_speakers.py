"""Speaker-aware input: the relative mapping, the marker layouts, and the zero-initialised speaker embeddings."""

from __future__ import annotations

import json
import logging
from operator import itemgetter
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

import run_fine_tuning
import run_post_training
from data_collators import Markers, assemble_pair
from ko_mrs.dialogue_data import build_eval_groups, read_dialogues, read_eval_groups, write_jsonl
from ko_mrs.ranking import ResponseSelector
from ko_mrs.ranking import main as ranking_main
from ko_mrs.speakers import (
    UtteranceFeatures,
    alternating_speakers,
    context_speakers,
    relative_speakers,
    turn_distances,
)
from modeling_mrs import BertForSpeakerAwareSelection

IDS = {"cls_id": 1, "sep_id": 2, "eot_id": 3}


# ----------------------------------------------------------------------------------------------- the mapping


@pytest.mark.parametrize(
    ("context", "reply"),
    [(["A", "B", "A"], "A"), (["B", "A", "B"], "A"), (["x", "y", "z", "w"], "y"), (["x", "y"], "nobody yet")],
)
def test_the_reply_speaker_is_always_spk0(context: list[str], reply: str) -> None:
    ids = relative_speakers(context, reply)
    assert all((i == 0) == (s == reply) for i, s in zip(ids, context, strict=True))


def test_three_speakers_map_as_documented() -> None:
    # the docstring's example: reply by A; B spoke last among the others (1), then C (2)
    assert relative_speakers(["A", "B", "C", "B"], "A") == [0, 1, 2, 1]
    assert relative_speakers(["A", "C", "B", "A", "B"], "A") == [0, 2, 1, 0, 1]
    # renaming the speakers changes nothing: only who is who relative to the reply matters
    assert relative_speakers(["민수", "지영", "철수", "지영"], "민수") == [0, 1, 2, 1]


def test_the_cap_folds_the_least_recent_speakers_into_other() -> None:
    context = ["E", "D", "C", "B", "A"]  # reply by A: B=1, C=2, D=3, E=4
    assert relative_speakers(context, "A", max_speakers=8) == [4, 3, 2, 1, 0]
    assert relative_speakers(context, "A", max_speakers=3) == [2, 2, 2, 1, 0]
    with pytest.raises(ValueError, match="max_speakers"):
        relative_speakers(context, "A", max_speakers=1)


def test_two_party_alternation_is_the_default_and_agrees_with_named_alternation() -> None:
    assert alternating_speakers(4) == [0, 1, 0, 1]  # the turn before the reply is the other party's
    names = ["A", "B", "A", "B", "A"]
    assert context_speakers([], 1, 4, 4) == context_speakers(names, 1, 4, 4) == [1, 0, 1]
    assert turn_distances(4, max_distance=3) == [3, 3, 2, 1]


# ----------------------------------------------------------------------------------------------- the layouts


def _markers(features: UtteranceFeatures) -> Markers:
    tokens = features.tokens()
    return Markers(
        features,
        tuple(100 + i for i, t in enumerate(tokens) if t.startswith("[SPK")),
        tuple(200 + i for i, t in enumerate(tokens) if t.startswith("[T")),
    )


def test_speaker_tokens_go_before_each_utterance_and_the_reply() -> None:
    markers = _markers(UtteranceFeatures(speaker_encoding="tokens", max_speakers=3))
    ids, types = assemble_pair([[10, 11], [12]], [20], max_length=64, speakers=[2, 1], markers=markers, **IDS)
    assert ids == [1, 102, 10, 11, 3, 101, 12, 2, 100, 20, 2]
    assert types == [0] * 8 + [1] * 3


def test_embedding_rows_follow_each_token_through_the_left_cut() -> None:
    features = UtteranceFeatures(speaker_encoding="embeddings", turn_distance_encoding="embeddings")
    context = [[10, 11, 12], [13, 14], [15]]
    ids, types, speaker_ids, turn_ids = assemble_pair(
        context, [20], max_length=9, speakers=[1, 2, 1], markers=_markers(features), **IDS
    )
    # budget 6: the reply keeps 1, the context its last 5 tokens ([EOT] 13 14 [EOT] 15), less the dangling [EOT]
    assert ids == [1, 13, 14, 3, 15, 2, 20, 2]
    assert types == [0, 0, 0, 0, 0, 0, 1, 1]
    # an utterance's [EOT] is its own; [CLS], [SEP] and the reply are 0
    assert speaker_ids == [0, 2, 2, 2, 1, 0, 0, 0]
    assert turn_ids == [0, 2, 2, 2, 1, 0, 0, 0]


def test_markers_refuse_speakers_of_the_wrong_length() -> None:
    markers = _markers(UtteranceFeatures(speaker_encoding="tokens"))
    with pytest.raises(ValueError, match="speakers has 1 entries for 2 context turns"):
        assemble_pair([[10], [11]], [20], max_length=32, speakers=[0], markers=markers, **IDS)


# ----------------------------------------------------------------------------------------- speaker embeddings


def _tiny_classifier(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)
    torch.nn.init.normal_(model.bert.pooler.dense.bias)  # "pretrained": nothing left at its init value
    model.save_pretrained(tmp_path / "pretrained")
    return tmp_path / "pretrained"


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 50, (3, 12), generator=g)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "speaker_ids": torch.randint(0, 4, (3, 12), generator=g),
        "turn_ids": torch.randint(0, 11, (3, 12), generator=g),
    }


def _with_features(path: Path, **overrides) -> BertForSpeakerAwareSelection:
    config = BertConfig.from_pretrained(path)
    UtteranceFeatures(speaker_encoding="embeddings", turn_distance_encoding="embeddings", **overrides).to_config(config)
    model, info = BertForSpeakerAwareSelection.from_pretrained(path, config=config, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["utterance_features.speaker.weight", "utterance_features.turn.weight"]
    return model.eval()


def test_zero_initialised_speaker_embeddings_leave_a_pretrained_models_logits_unchanged(tmp_path: Path) -> None:
    path = _tiny_classifier(tmp_path)
    inputs = _inputs()
    plain = BertForSequenceClassification.from_pretrained(path).eval()
    aware = _with_features(path)
    assert not aware.utterance_features.speaker.weight.any() and not aware.utterance_features.turn.weight.any()
    with torch.no_grad():
        expected = plain(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        got = aware(**inputs).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # and the embeddings do act once they are no longer zero
    with torch.no_grad():
        aware.utterance_features.speaker.weight.normal_()
        assert not torch.allclose(aware(**inputs).logits, expected)


def test_speaker_embeddings_survive_save_and_reload(tmp_path: Path) -> None:
    aware = _with_features(_tiny_classifier(tmp_path))
    with torch.no_grad():
        aware.utterance_features.speaker.weight.normal_()
        aware.utterance_features.turn.weight.normal_()
    aware.save_pretrained(tmp_path / "aware")
    reloaded, info = BertForSpeakerAwareSelection.from_pretrained(tmp_path / "aware", output_loading_info=True)
    assert not info["missing_keys"]
    torch.testing.assert_close(reloaded.utterance_features.speaker.weight, aware.utterance_features.speaker.weight)
    torch.testing.assert_close(reloaded.utterance_features.turn.weight, aware.utterance_features.turn.weight)
    assert UtteranceFeatures.from_config(reloaded.config).speaker_encoding == "embeddings"
    inputs = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(**inputs).logits, aware(**inputs).logits)


def test_a_model_with_speaker_embeddings_refuses_a_batch_without_speaker_ids(tmp_path: Path) -> None:
    aware = _with_features(_tiny_classifier(tmp_path))
    inputs = _inputs()
    del inputs["speaker_ids"]
    with pytest.raises(ValueError, match="speaker_ids"):
        aware(**inputs)


# ------------------------------------------------------------------------------ end to end: train, rank, refuse


@pytest.fixture(scope="module")
def speaker_groups(tiny_setup: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    dialogues, _ = read_dialogues(tiny_setup["validation"])
    groups = build_eval_groups(dialogues, seed=0)[:6]
    assert all(len(g["speakers"]) == len(g["context"]) and g["reply_speaker"] for g in groups)
    return write_jsonl(groups, tmp_path_factory.mktemp("groups") / "groups.jsonl")


@pytest.mark.parametrize(
    ("speaker_encoding", "turn_distance_encoding", "selector_class"),
    [("tokens", "tokens", BertForSequenceClassification), ("embeddings", "embeddings", BertForSpeakerAwareSelection)],
)
def test_fine_tuned_with_speakers_ranks_as_evaluation_scored(
    tiny_setup: dict[str, Path],
    speaker_groups: Path,
    tmp_path: Path,
    speaker_encoding: str,
    turn_distance_encoding: str,
    selector_class: type,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Post-train and fine-tune a few steps with speakers on; the selector then lays pairs out as evaluation did."""
    common = ["--max_seq_length", "64", "--report_to", "none", "--disable_tqdm", "true", "--max_steps", "3"]
    features = ["--speaker_encoding", speaker_encoding, "--turn_distance_encoding", turn_distance_encoding]
    post = tmp_path / "post"
    run_post_training.run(
        ["--model_name_or_path", str(tiny_setup["model"]), "--train_files", str(tiny_setup["train"]),
         "--output_dir", str(post), "--do_train", "--per_device_train_batch_size", "8", *common, *features]
    )  # fmt: skip
    fine = tmp_path / "fine"
    run_fine_tuning.run(
        ["--model_name_or_path", str(post), "--train_files", str(tiny_setup["train"]),
         "--test_groups", str(speaker_groups), "--output_dir", str(fine), "--do_train", "--do_predict",
         "--learning_rate", "1e-3", "--per_device_train_batch_size", "4", *common]  # features: the checkpoint's
    )  # fmt: skip
    selector = ResponseSelector.from_pretrained(str(fine), device="cpu")
    assert type(selector.model) is selector_class
    assert selector.features.speaker_encoding == speaker_encoding
    groups = read_eval_groups(speaker_groups)
    predictions = [json.loads(line) for line in (fine / "test_predictions.jsonl").read_text("utf-8").splitlines()]
    evaluated: dict[str, list[float]] = {}
    for group in groups:
        probabilities = selector.score(
            group["context"], group["candidates"], speakers=group["speakers"], reply_speaker=group["reply_speaker"]
        )
        ours = sorted((p for p in predictions if p["group_id"] == group["group_id"]), key=itemgetter("candidate_index"))
        evaluated[group["group_id"]] = [p["probability"] for p in ours]
        assert probabilities == pytest.approx(evaluated[group["group_id"]], abs=1e-5)
    # who speaks changes the score: the features reach the model (made large first: 3 steps leave them near 0)
    with torch.no_grad():
        if speaker_encoding == "tokens":
            selector.model.get_input_embeddings().weight[list(selector.markers.speaker_tokens)] = torch.randn(4, 32)
        else:
            selector.model.utterance_features.speaker.weight.normal_()
    group = groups[0]
    # the last turn (all that max_length 64 keeps of the context) said by the reply's speaker instead of the other
    swapped = selector.score(
        group["context"], group["candidates"], speakers=group["speakers"], reply_speaker=group["speakers"][-1]
    )
    assert swapped != selector.score(
        group["context"], group["candidates"], speakers=group["speakers"], reply_speaker=group["reply_speaker"]
    )
    with pytest.raises(ValueError, match=r"speakers has 1 entries for \d+ context turns"):
        selector.rank(group["context"], group["candidates"], speakers=["A"], reply_speaker="A")
    with pytest.raises(ValueError, match="reply_speaker go together"):
        selector.rank(group["context"], group["candidates"], speakers=group["speakers"])
    # without speakers: two alternating parties, said once; the demo's two-party groups score the same either way
    with caplog.at_level(logging.WARNING, logger="ko_mrs.ranking"):
        assumed = selector.score(group["context"], group["candidates"])
        selector.score(group["context"], group["candidates"])
    assert [r.message for r in caplog.records].count(
        "no speakers given: assuming two parties alternate, the reply's speaker two turns back"
    ) == 1
    assert assumed == selector.score(
        group["context"], group["candidates"], speakers=group["speakers"], reply_speaker=group["reply_speaker"]
    )
    # the CLI and the JSONL format: the same refusal as one line naming the line, exit 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**group, "speakers": ["A"]}, ensure_ascii=False) + "\n", "utf-8")
    assert ranking_main(["--model", str(fine), "--input", str(bad), "--output", str(tmp_path / "out.jsonl")]) == 2
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(group, ensure_ascii=False) + "\n", "utf-8")
    assert ranking_main(["--model", str(fine), "--input", str(good), "--output", str(tmp_path / "out.jsonl")]) == 0
    ranked = json.loads((tmp_path / "out.jsonl").read_text("utf-8"))["ranking"]
    by_id = {hit["corpus_id"]: hit["score"] for hit in ranked}
    assert [by_id[i] for i in range(len(by_id))] == pytest.approx(evaluated[group["group_id"]], abs=1e-5)


def test_ranking_cuts_the_context_where_fine_tuning_did(tiny_setup: dict[str, Path]) -> None:
    """A model fine-tuned with --max_turns 1 records it; ranking then sees only the last turn, as training did."""
    from transformers import AutoTokenizer

    from ko_mrs.preprocessing import add_eot_token

    tokenizer = AutoTokenizer.from_pretrained(tiny_setup["model"])
    add_eot_token(tokenizer)
    model = BertForSequenceClassification.from_pretrained(tiny_setup["model"], num_labels=2)
    model.resize_token_embeddings(len(tokenizer))
    context, candidates = ["안녕하세요, 차를 사려고요.", "어떤 차를 찾으세요?"], ["SUV요.", "배고파요."]
    model.config.mrs_max_turns = 1
    cut = ResponseSelector(model, tokenizer)
    assert cut.score(context, candidates) == cut.score(context[-1:], candidates)
    model.config.mrs_max_turns = None
    whole = ResponseSelector(model, tokenizer)
    assert whole.score(context, candidates) != whole.score(context[-1:], candidates)
