"""Tokenisation and the example tables: windows, pairs and the pool they point into."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from ko_mrs.dialogue_data import read_dialogues
from ko_mrs.preprocessing import DialoguePool, build_pairs, build_windows, tokenize_dialogues


@pytest.fixture(scope="module")
def tokenized(tiny_setup: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """Two corpora (folders), so that same-corpus negatives can be checked."""
    root = tmp_path_factory.mktemp("two-corpora")
    lines = tiny_setup["train"].read_text(encoding="utf-8").splitlines()
    paths = []
    for name, chunk in (("alpha", lines[:40]), ("beta", lines[40:])):
        (root / name).mkdir()
        path = root / name / "train.jsonl"
        path.write_text("\n".join(chunk) + "\n", encoding="utf-8")
        paths.append(path)
    dialogues, _ = read_dialogues(paths)
    tokenizer = AutoTokenizer.from_pretrained(tiny_setup["model"])
    return tokenize_dialogues(dialogues, tokenizer), tokenizer, [json.loads(x) for x in lines]


def test_tokenised_once_per_utterance(tokenized) -> None:
    table, tokenizer, records = tokenized
    row = table[0]
    assert len(row["utterance_ids"]) == len(records[0]["utterances"]) == row["num_turns"]
    assert row["utterance_ids"][1] == tokenizer(records[0]["utterances"][1], add_special_tokens=False)["input_ids"]
    assert row["utterance_lengths"] == [len(ids) for ids in row["utterance_ids"]]


@pytest.mark.parametrize("window", [1, 2, 3])
def test_one_window_per_position(tokenized, window: int) -> None:
    table, _, _ = tokenized
    windows = build_windows(table, window=window)
    assert len(windows) == sum(n - 1 for n in table["num_turns"])
    lengths = table["utterance_lengths"]
    for row in windows.select(range(0, len(windows), 7)):
        d, start, t = row["dialogue"], row["start"], row["position"]
        assert 1 <= t < table[d]["num_turns"] and start == max(0, t - window)
        assert row["length"] == sum(lengths[d][start:t]) + (t - start - 1) + lengths[d][t] + 3


def test_pairs_every_prefix_ratio_and_same_corpus_negatives(tokenized) -> None:
    table, _, _ = tokenized
    pool = DialoguePool(table)
    pairs = build_pairs(table, pool, negatives_per_positive=2, seed=5)
    positives = sum(n - 1 for n in table["num_turns"])
    assert len(pairs) == 3 * positives and sum(pairs["label"]) == positives
    corpus = table["corpus"]
    for row in pairs.select(range(0, len(pairs), 5)):
        if row["label"] == 1:
            assert (row["candidate_dialogue"], row["candidate_position"]) == (row["dialogue"], row["position"])
        else:
            assert row["candidate_dialogue"] != row["dialogue"]
            assert corpus[row["candidate_dialogue"]] == corpus[row["dialogue"]]
    assert (
        build_pairs(table, pool, negatives_per_positive=2, seed=5)["candidate_dialogue"] == pairs["candidate_dialogue"]
    )
    assert (
        build_pairs(table, pool, negatives_per_positive=2, seed=6)["candidate_dialogue"] != pairs["candidate_dialogue"]
    )
    last_only = build_pairs(table, pool, every_prefix=False, max_turns=2)
    assert len(last_only) == 2 * len(table)
    for row in last_only.select(range(0, len(last_only), 2)):
        assert row["position"] == table[row["dialogue"]]["num_turns"] - 1
        assert row["start"] == max(0, row["position"] - 2)


def test_mixed_corpora_negatives_when_asked(tokenized) -> None:
    table, _, _ = tokenized
    pool = DialoguePool(table, same_corpus_negatives=False)
    pairs = build_pairs(table, pool, seed=1)
    corpus = table["corpus"]
    crossed = [corpus[r["candidate_dialogue"]] != corpus[r["dialogue"]] for r in pairs if r["label"] == 0]
    assert any(crossed)
