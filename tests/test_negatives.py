"""Negative sampling: BM25-mined hard negatives and the random / hard mix."""

from __future__ import annotations

import random

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer

from ko_mrs import negatives
from ko_mrs.negatives import NegativeCandidate, NegativeSampler, lexical_tokenizer, mine_hard_negatives, normalise
from ko_mrs.preprocessing import DialoguePool, build_pairs, tokenize_dialogues

DIALOGUES = [
    ["어떤 차를 사야 할지 모르겠어요.", "차는 오래 타니까 신중하게 골라야 해요.", "네, 자동차는 신중히 고를게요."],
    ["녹차를 좋아하세요?", "네, 저는 차 마시는 걸 좋아해요.", "차는 따뜻할 때 마셔야 맛있어요."],
    ["노트북을 사려는데 뭘 골라야 할지 모르겠어요.", "노트북은 오래 쓰니까 신중하게 골라야 해요.", "네, 고를게요."],
    ["내일 날씨 어때요?", "내일은 맑고 화창하대요.", "네, 고를게요."],
    ["농구 좋아하세요?", "저는 농구를 좋아합니다.", "저도 농구를 자주 해요."],
]


def _dataset(corpora: list[str] | None = None) -> Dataset:
    return Dataset.from_dict(
        {
            "id": [f"d{i}" for i in range(len(DIALOGUES))],
            "utterances": DIALOGUES,
            "num_turns": [len(d) for d in DIALOGUES],
            "corpus": corpora or ["demo"] * len(DIALOGUES),
        }
    )


@pytest.mark.parametrize("tokenizer", ["char_bigram", "kiwi"])
def test_hard_negatives_come_from_other_dialogues_and_never_copy_the_positive(tokenizer: str) -> None:
    mined = mine_hard_negatives(_dataset(), tokenizer=tokenizer, top_k=3)
    assert len(mined) == len(DIALOGUES)
    for d, (dialogues, positions) in enumerate(zip(mined["hard_dialogue"], mined["hard_position"], strict=True)):
        assert len(dialogues) == len(DIALOGUES[d]) - 1  # one list per context position t >= 1
        for t, (ds, ps) in enumerate(zip(dialogues, positions, strict=True), start=1):
            assert 0 < len(ds) <= 3
            positive = normalise(DIALOGUES[d][t])
            for other, p in zip(ds, ps, strict=True):
                assert other != d
                assert normalise(DIALOGUES[other][p]) != positive
    # "네, 고를게요." closes dialogues 2 and 3: the copy in dialogue 2 is never a negative for dialogue 3's reply
    assert (2, 2) not in set(zip(mined["hard_dialogue"][3][1], mined["hard_position"][3][1], strict=True))


def test_the_best_hard_negative_shares_the_contexts_words() -> None:
    mined = mine_hard_negatives(_dataset(), tokenizer="char_bigram", top_k=2)
    # context "어떤 차를 사야 할지 모르겠어요." (car): the best hit elsewhere is the laptop dialogue's near-copy
    best = NegativeCandidate(mined["hard_dialogue"][0][0][0], mined["hard_position"][0][0][0])
    assert DIALOGUES[best.dialogue][best.position] == "노트북을 사려는데 뭘 골라야 할지 모르겠어요."


def test_numba_retrieval_leaves_the_torch_thread_count_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """numba's OpenMP layer sets the process's OpenMP thread count to the cores it mines on; a run held to one
    thread (OMP_NUM_THREADS=1) then trained on every core after mining, beside its neighbours on the same cores."""
    monkeypatch.setattr(negatives, "_NUMBA_FROM", 0)  # numba retrieval on the small pool
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mined = mine_hard_negatives(_dataset(), tokenizer="char_bigram", top_k=2)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert mined["hard_dialogue"] == mine_hard_negatives(_dataset(), tokenizer="char_bigram", top_k=2)["hard_dialogue"]


def test_mining_is_reproducible_and_respects_corpora() -> None:
    first = mine_hard_negatives(_dataset(), top_k=2)
    assert first["hard_dialogue"] == mine_hard_negatives(_dataset(), top_k=2)["hard_dialogue"]
    split = mine_hard_negatives(_dataset(["a", "a", "b", "b", "a"]), top_k=4)
    corpus = {0: "a", 1: "a", 2: "b", 3: "b", 4: "a"}
    for d, lists in enumerate(split["hard_dialogue"]):
        assert all(corpus[other] == corpus[d] for hits in lists for other in hits)


def test_a_large_pool_is_searched_in_shards_by_dialogue() -> None:
    """With 3 utterances a shard, the 15 utterances make 5 shards: dialogue d searches shard d % 5 alone, which
    holds its own dialogue only, so nothing is left; with 2 shards it finds the other dialogues of its parity."""
    alone = mine_hard_negatives(_dataset(), top_k=3, shard_size=3)
    assert all(hits == [] for lists in alone["hard_dialogue"] for hits in lists)
    halves = mine_hard_negatives(_dataset(), top_k=3, shard_size=8)
    for d, lists in enumerate(halves["hard_dialogue"]):
        assert {other % 2 for hits in lists for other in hits} == {d % 2} and all(lists)
        assert d not in {other for hits in lists for other in hits}
    # the car context's best hit, the laptop dialogue (2), shares its shard: it stays first
    assert halves["hard_dialogue"][0][0][0] == 2
    with pytest.raises(ValueError, match="shard_size"):
        mine_hard_negatives(_dataset(), shard_size=0)


def test_kiwi_terms_are_content_morphemes() -> None:
    (terms,) = lexical_tokenizer("kiwi")(["자동차는 신중히 골라야합니다."])
    assert "자동차" in terms and "고르" in terms and "는" not in terms
    with pytest.raises(ValueError, match="hard_negative_tokenizer"):
        lexical_tokenizer("mecab")


@pytest.fixture(scope="module")
def table(tiny_setup):
    tokenizer = AutoTokenizer.from_pretrained(tiny_setup["model"])
    return tokenize_dialogues(_dataset(), tokenizer)


def test_ratio_zero_draws_exactly_the_random_negatives(table) -> None:
    pool = DialoguePool(table)
    plain = build_pairs(table, pool, negatives_per_positive=2, seed=3)
    mixed = build_pairs(
        table, pool, negatives_per_positive=2, seed=3, sampler=NegativeSampler(pool, mine_hard_negatives(_dataset()))
    )
    assert plain["candidate_dialogue"] == mixed["candidate_dialogue"]
    assert plain["candidate_position"] == mixed["candidate_position"]


def test_ratio_one_takes_hard_negatives_then_falls_back_to_random(table) -> None:
    pool = DialoguePool(table)
    hard = mine_hard_negatives(_dataset(), top_k=1)
    sampler = NegativeSampler(pool, hard, hard_ratio=1.0)
    mined = sampler.hard_rows([0])[0][0]  # dialogue 0, the reply at position 1
    drawn = sampler.draw(0, 3, random.Random(0), mined)
    assert drawn[0] == mined[0]  # the only mined one comes first ...
    assert all(n.dialogue != 0 for n in drawn[1:])  # ... then random ones from other dialogues
    pairs = build_pairs(table, pool, negatives_per_positive=1, seed=0, listwise=True, sampler=sampler)
    for row in pairs:
        top = hard[row["dialogue"]]
        expected = (top["hard_dialogue"][row["position"] - 1][0], top["hard_position"][row["position"] - 1][0])
        assert (row["candidate_dialogue"][1], row["candidate_position"][1]) == expected


def test_sampler_rejects_bad_settings(table) -> None:
    pool = DialoguePool(table)
    with pytest.raises(ValueError, match="within"):
        NegativeSampler(pool, None, 1.5)
    with pytest.raises(ValueError, match="needs hard negatives"):
        NegativeSampler(pool, None, 0.5)
    with pytest.raises(ValueError, match="top_k"):
        mine_hard_negatives(_dataset(), top_k=0)


def test_generated_adversarial_negatives_perturb_the_contexts_own_reply(tiny_setup) -> None:
    from data_collators import ResponseSelectionCollator
    from ko_mrs.adversarial import generate_negatives

    generated = generate_negatives(_dataset(), seed=1)
    assert generate_negatives(_dataset(), seed=1).texts["utterances"] == generated.texts["utterances"]
    lists = generated.lists
    assert len(lists) == len(generated.texts) == len(DIALOGUES)
    made = 0
    for d, (rows, positions) in enumerate(zip(lists["hard_dialogue"], lists["hard_position"], strict=True)):
        assert len(rows) == len(DIALOGUES[d]) - 1  # one list per context position t >= 1
        for t, (rs, ps) in enumerate(zip(rows, positions, strict=True), start=1):
            assert len(rs) <= 2 and set(rs) <= {len(DIALOGUES) + d}  # the extra pool row of this dialogue
            for p in ps:
                text = generated.texts["utterances"][d][p]
                assert normalise(text) != normalise(DIALOGUES[d][t])
                made += 1
    assert made >= len(DIALOGUES)  # the rules apply to most of these replies

    tokenizer = AutoTokenizer.from_pretrained(tiny_setup["model"])
    table = tokenize_dialogues(_dataset(), tokenizer)
    pool = DialoguePool(table, extra=tokenize_dialogues(generated.texts, tokenizer))
    assert len(pool) == len(DIALOGUES)  # the generated rows are not dialogues: random draws never reach them
    sampler = NegativeSampler(pool, adversarial=lists, adversarial_ratio=1.0)
    pairs = build_pairs(table, pool, negatives_per_positive=1, seed=0, listwise=True, sampler=sampler)
    collator = ResponseSelectionCollator(tokenizer=tokenizer, pool=pool, max_length=64)
    for row in pairs:
        own = lists[row["dialogue"]]["hard_position"][row["position"] - 1]
        negative = (row["candidate_dialogue"][1], row["candidate_position"][1])
        if own:  # a generated negative where one exists, else a random utterance of another dialogue
            assert negative[0] == len(DIALOGUES) + row["dialogue"] and negative[1] in own
        else:
            assert negative[0] < len(DIALOGUES) and negative[0] != row["dialogue"]
    batch = collator([pairs[0]])
    reply = DIALOGUES[pairs[0]["dialogue"]][pairs[0]["position"]]
    decoded = tokenizer.decode(batch["input_ids"][1], skip_special_tokens=True).replace(" ", "")
    assert reply.replace(" ", "") not in decoded  # the second candidate is the perturbation, not the reply
    with pytest.raises(ValueError, match="add up to"):
        NegativeSampler(pool, mine_hard_negatives(_dataset()), 0.6, lists, 0.6)
