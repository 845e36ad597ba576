"""Tests for the BM25 response-selection baseline and its Korean tokenizer."""

from __future__ import annotations

import unicodedata

import pytest

from ko_mrs.bm25 import bm25_scores, default_tokenize
from ko_mrs.metrics import compute_ranking_metrics

CONTEXT = ["오늘 학교에서 뭐 했어?", "수학 시험 공부했어. 너는?"]


def test_tokenize_adds_bigrams_so_stems_match_across_particles() -> None:
    tokens = default_tokenize("학교에서 공부!")
    assert tokens == ["학교에서", "학교", "교에", "에서", "공부"]
    assert "학교" in default_tokenize("학교는")


def test_tokenize_normalises_case_punctuation_and_jamo() -> None:
    assert default_tokenize("Hi, BE!!") == ["hi", "be"]
    assert default_tokenize("뭐해?밥") == ["뭐해", "밥"]
    assert default_tokenize(unicodedata.normalize("NFD", "학교")) == ["학교"]
    assert default_tokenize("") == []
    assert default_tokenize("?! ...") == []


def test_candidate_sharing_words_with_context_scores_highest() -> None:
    candidates = ["내일 비가 온대", "나도 학교에서 수학 시험 공부했어", "점심 메뉴 추천해 줘"]
    scores = bm25_scores(CONTEXT, candidates)
    assert len(scores) == len(candidates)
    assert max(range(len(scores)), key=scores.__getitem__) == 1
    assert scores[1] > 0.0


@pytest.mark.parametrize("candidates", [["학교 가자"], ["학교 가자", "비가 온대"]])
def test_overlap_scores_positive_in_tiny_groups(candidates: list[str]) -> None:
    # Plain BM25Okapi idf is 0 or negative here (N = 1 or 2); the positive idf keeps overlap rewarded.
    scores = bm25_scores(CONTEXT, candidates)
    assert scores[0] > 0.0
    assert scores[0] == max(scores)


def test_empty_candidate_does_not_crash() -> None:
    scores = bm25_scores(CONTEXT, ["", "학교에서 공부했어", "!!"])
    assert scores[0] == 0.0
    assert scores[2] == 0.0
    assert scores[1] > 0.0


@pytest.mark.parametrize(
    ("context", "candidates", "expected"),
    [
        (CONTEXT, [], []),
        (CONTEXT, ["", "..."], [0.0, 0.0]),
        ([], ["학교 가자", "비가 온대"], [0.0, 0.0]),
        (["", "?"], ["학교 가자"], [0.0]),
    ],
)
def test_degenerate_inputs_give_zero_scores(context, candidates, expected) -> None:
    assert bm25_scores(context, candidates) == expected


def test_custom_tokenizer_is_used() -> None:
    scores = bm25_scores(["a b"], ["a", "c"], tokenize=str.split)
    assert scores[0] > scores[1] == 0.0


def test_bm25_scores_feed_ranking_metrics() -> None:
    dialogues = {
        "d1": (["주말에 영화 볼래?"], ["좋아 영화 보자", "배가 고파", "비가 와"]),
        "d2": (["강아지 산책 시켰어?"], ["오늘 날씨 맑음", "응 강아지 산책 다녀왔어", "숙제 했어"]),
    }
    positives = {"d1": 0, "d2": 1}
    gids, scores, labels = [], [], []
    for gid, (context, candidates) in dialogues.items():
        gids += [gid] * len(candidates)
        scores += bm25_scores(context, candidates)
        labels += [int(i == positives[gid]) for i in range(len(candidates))]
    assert compute_ranking_metrics(gids, scores, labels)["r3@1"] == 1.0
