"""Tests for data_collators.py: layout, truncation, URC draws, MLM, padding and reproducibility (CPU, offline)."""

import json
import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertTokenizer, TrainerControl, TrainerState, TrainingArguments

from data_collators import (
    IGNORE_INDEX,
    PostTrainingCollator,
    ResponseSelectionCollator,
    assemble_pair,
    draw_candidate,
    special_ids,
)
from ko_mrs.dialogue_data import read_dialogues
from ko_mrs.negatives import NegativeSampler
from ko_mrs.preprocessing import DialoguePool, build_pairs, build_windows, groups_to_pairs, tokenize_dialogues
from ko_mrs.tiny_model import train_wordpiece
from ko_mrs.training import CollatorEpochCallback

SYLLABLES = "가나다라마바사아자차카타파하거너더러머버서어저처커터퍼허고노도로모보소오조초"
COMMON = ["네", "그래요", "정말", "오늘", "우리"]
EPOCHS = 12  # passes over the windows for the MLM statistics
URC_EPOCHS = 30  # draws per window for the URC statistics (drawing alone is cheap)


def synthetic_dialogues(n: int, seed: int) -> list[dict]:
    """Dialogues of 4-8 utterances; each has its own words (many seen once, so split into ## pieces)."""
    rng = random.Random(seed)
    dialogues = []
    for d in range(n):
        words = ["".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(12)]
        utterances = [
            " ".join(rng.choice(words + COMMON) for _ in range(rng.randint(3, 9))) for _ in range(rng.randint(4, 8))
        ]
        dialogues.append({"id": f"{seed}-{d}", "utterances": utterances})
    return dialogues


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("collators")
    files = []
    for corpus, n, seed in (("alpha", 20, 1), ("beta", 10, 2)):
        path = root / corpus / "train.jsonl"
        path.parent.mkdir()
        records = synthetic_dialogues(n, seed)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        files.append(path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("datasets.config.HF_DATASETS_CACHE", str(root / "hf-cache"))
        dialogues, _ = read_dialogues(files, cache_dir=str(root / "hf-cache"))
        texts = (t for turns in dialogues["utterances"] for t in turns)
        train_wordpiece(texts, vocab_size=2000).save_pretrained(root / "tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
        tokenized = tokenize_dialogues(dialogues, tokenizer)
        pool = DialoguePool(tokenized)
        windows = build_windows(tokenized, window=3)
        pairs = build_pairs(tokenized, pool, every_prefix=True, negatives_per_positive=1)
    return SimpleNamespace(
        tokenizer=tokenizer,
        pool=pool,
        utterances=tokenized["utterance_ids"],
        windows=windows.to_list(),
        pairs=pairs.to_list(),
        special=special_ids(tokenizer),
    )


def masked_and_plain(env: SimpleNamespace, epochs: int = EPOCHS, **settings: object) -> list[tuple[dict, dict]]:
    """Batches over every window for several epochs, each with its unmasked twin (same URC draws, no MLM)."""
    out = []
    for epoch in range(epochs):
        masked = PostTrainingCollator(env.tokenizer, env.pool, epoch=epoch, **settings)
        plain = PostTrainingCollator(env.tokenizer, env.pool, epoch=epoch, **(settings | {"mlm_probability": 0.0}))
        for i in range(0, len(env.windows), 32):
            out.append((masked(env.windows[i : i + 32]), plain(env.windows[i : i + 32])))
    return out


def original_ids(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Undo the MLM corruption: the labels hold the original token wherever one was masked."""
    return torch.where(batch["labels"] != IGNORE_INDEX, batch["labels"], batch["input_ids"])


def flat_context(env: SimpleNamespace, turns: list[list[int]]) -> list[int]:
    return sum(([env.special.eot, *turn] for turn in turns), [])[1:]


def response_part(row_ids: torch.Tensor, row_types: torch.Tensor) -> list[int]:
    return row_ids[row_types == 1].tolist()[:-1]  # the response, without its closing [SEP]


# --------------------------------------------------------------------------------------------------
# assemble_pair
# --------------------------------------------------------------------------------------------------

IDS = {"cls_id": 2, "sep_id": 3, "eot_id": 5}


def test_assemble_pair_layout_and_token_types() -> None:
    ids, types = assemble_pair([[10, 11], [12], [13, 14]], [20, 21], max_length=64, **IDS)
    assert ids == [2, 10, 11, 5, 12, 5, 13, 14, 3, 20, 21, 3]
    assert types == [0] * 9 + [1] * 3


def test_assemble_pair_cuts_the_context_from_the_left() -> None:
    context = [list(range(100, 130)), list(range(200, 210)), list(range(300, 305))]
    ids, types = assemble_pair(context, [20, 21, 22], max_length=16, **IDS)
    # the latest turn is intact right before [SEP], the earliest is gone, the response is whole
    assert ids == [2, 206, 207, 208, 209, 5, 300, 301, 302, 303, 304, 3, 20, 21, 22, 3]
    assert types == [0] * 12 + [1] * 4


def test_assemble_pair_drops_a_dangling_eot() -> None:
    # budget 10, response 2: the context's last 8 tokens are "[EOT] 200..206", and the [EOT] goes
    ids, _ = assemble_pair([list(range(100, 107)), list(range(200, 207))], [20, 21], max_length=13, **IDS)
    assert ids == [2, *range(200, 207), 3, 20, 21, 3]


def test_assemble_pair_response_truncation_rule() -> None:
    long_response = list(range(400, 460))
    # short context: the response takes all the rest of the budget
    ids, types = assemble_pair([[10, 11]], long_response, max_length=32, **IDS)
    assert len(ids) == 32 and ids[1:4] == [10, 11, 3] and sum(types) == 32 - 4
    assert ids[4:-1] == long_response[:27]  # cut from the right
    # both long: the response gets half of the 29-token budget, the context the rest
    ids, types = assemble_pair([list(range(100, 160))], long_response, max_length=32, **IDS)
    assert len(ids) == 32 and sum(types) == 29 // 2 + 1
    assert ids[-15:-1] == long_response[:14]
    assert ids[ids.index(3) - 1] == 159


def test_assemble_pair_never_exceeds_max_length() -> None:
    rng = random.Random(0)
    for _ in range(500):
        context = [[rng.randint(10, 99)] * rng.randint(1, 40) for _ in range(rng.randint(1, 5))]
        response = [7] * rng.randint(1, 80)
        max_length = rng.randint(5, 120)
        ids, types = assemble_pair(context, response, max_length=max_length, **IDS)
        context_length = sum(map(len, context)) + len(context) - 1
        assert len(ids) == len(types) <= max_length
        assert min(context_length + len(response) + 3, max_length) - len(ids) in (0, 1)  # 1: a dropped [EOT]
        assert ids[0] == 2 and ids.count(3) == 2 and ids[-1] == 3
        budget = max_length - 3
        assert types.count(1) - 1 == min(len(response), max(budget // 2, budget - context_length))
    with pytest.raises(ValueError, match="max_length"):
        assemble_pair([[10]], [11], max_length=4, **IDS)


def test_special_ids(env: SimpleNamespace, tmp_path: Path) -> None:
    tokenizer = env.tokenizer
    assert env.special == (
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        tokenizer.convert_tokens_to_ids("[EOT]"),
        tokenizer.pad_token_id,
        tokenizer.mask_token_id,
    )
    assert len(set(env.special)) == 5
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "가", "나"]))
    with pytest.raises(ValueError, match="EOT"):
        special_ids(BertTokenizer(vocab_file=str(tmp_path / "vocab.txt")))


# --------------------------------------------------------------------------------------------------
# URC candidates
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_labels", "probabilities"),
    [(3, None), (3, (0.2, 0.3, 0.5)), (2, None), (2, (0.7, 0.3))],
)
def test_urc_label_proportions_and_candidates(
    env: SimpleNamespace, num_labels: int, probabilities: tuple[float, ...] | None
) -> None:
    collator = PostTrainingCollator(env.tokenizer, env.pool, num_urc_labels=num_labels, urc_probabilities=probabilities)
    expected = collator.urc_probabilities
    counts: Counter = Counter()
    for epoch in range(URC_EPOCHS):
        collator.epoch = epoch
        for window in env.windows:
            _, (label, dialogue, position) = collator.draw(window)
            counts[label] += 1
            kind = (
                ("random", "same_dialogue", "true_next")[label] if num_labels == 3 else ("random", "true_next")[label]
            )
            if kind == "true_next":
                assert (dialogue, position) == (window["dialogue"], window["position"])
            elif kind == "same_dialogue":
                assert dialogue == window["dialogue"] and position != window["position"]
                assert 0 <= position < env.pool.num_turns[dialogue]
            else:
                assert dialogue != window["dialogue"]
                assert env.pool.corpus[dialogue] == env.pool.corpus[window["dialogue"]]
                assert 0 <= position < env.pool.num_turns[dialogue]
    total = sum(counts.values())
    assert total > 4000
    for label, p in enumerate(expected):
        assert abs(counts[label] / total - p) < 0.03, (counts, expected)


def test_same_dialogue_candidates_cover_the_other_positions(env: SimpleNamespace) -> None:
    """Same-dialogue draws reach every position but the true one, context turns included."""
    kinds = ("random", "same_dialogue", "true_next")
    window = next(w for w in env.windows if w["position"] == 2 and env.pool.num_turns[w["dialogue"]] >= 5)
    seen = set()
    for i in range(400):
        rng = np.random.default_rng(i)
        label, dialogue, position = draw_candidate(
            rng, NegativeSampler(env.pool), window["dialogue"], 2, [0.0, 1.0, 1.0], kinds
        )
        assert label == 1 and dialogue == window["dialogue"]
        seen.add(position)
    assert seen == set(range(int(env.pool.num_turns[window["dialogue"]]))) - {2}


def test_batch_holds_the_drawn_candidate(env: SimpleNamespace) -> None:
    collator = PostTrainingCollator(env.tokenizer, env.pool)
    windows = env.windows[:64]
    batch = collator(windows)
    restored = original_ids(batch)
    for i, window in enumerate(windows):
        _, (label, dialogue, position) = collator.draw(window)
        assert batch["urc_labels"][i] == label
        assert response_part(restored[i], batch["token_type_ids"][i]) == env.utterances[dialogue][position]


def test_invalid_settings_raise(env: SimpleNamespace) -> None:
    with pytest.raises(ValueError, match="urc_probabilities"):
        PostTrainingCollator(env.tokenizer, env.pool, urc_probabilities=(0.5, 0.5))
    with pytest.raises(ValueError, match="urc_probabilities"):
        PostTrainingCollator(env.tokenizer, env.pool, urc_probabilities=(0.5, 0.4, 0.4))
    with pytest.raises(ValueError, match="num_urc_labels"):
        PostTrainingCollator(env.tokenizer, env.pool, num_urc_labels=4)


# --------------------------------------------------------------------------------------------------
# MLM
# --------------------------------------------------------------------------------------------------


def mlm_stats(env: SimpleNamespace, pairs: list[tuple[dict, dict]]) -> Counter:
    special = torch.tensor(env.tokenizer.all_special_ids)
    stats: Counter = Counter()
    for batch, plain in pairs:
        labels, ids, original = batch["labels"], batch["input_ids"], plain["input_ids"]
        assert (plain["labels"] == IGNORE_INDEX).all()
        for key in ("attention_mask", "token_type_ids", "urc_labels"):
            assert torch.equal(batch[key], plain[key])
        is_special = torch.isin(original, special)
        masked = labels != IGNORE_INDEX
        # no special token ([CLS], [SEP], [EOT], [PAD], ...) is ever a target or changed
        assert not (masked & is_special).any()
        assert torch.equal(ids[is_special], original[is_special])
        # labels are -100 except at masked positions, where they hold the original token
        assert torch.equal(labels[masked], original[masked])
        changed = ids != original
        assert not (changed & ~masked).any()
        replaced = masked & changed & (ids != env.special.mask)
        assert not torch.isin(ids[replaced], special).any()  # random replacements are ordinary tokens
        stats["maskable"] += int((~is_special).sum())
        stats["masked"] += int(masked.sum())
        stats["mask"] += int((masked & (ids == env.special.mask)).sum())
        stats["random"] += int(replaced.sum())
        stats["kept"] += int((masked & ~changed).sum())
    return stats


def test_mlm_rate_split_and_labels(env: SimpleNamespace) -> None:
    stats = mlm_stats(env, masked_and_plain(env))
    assert stats["masked"] > 5000
    assert abs(stats["masked"] / stats["maskable"] - 0.15) < 0.01, stats
    # a random replacement equal to the original counts as kept; with this vocabulary that is rare
    assert abs(stats["mask"] / stats["masked"] - 0.8) < 0.015, stats
    assert abs(stats["random"] / stats["masked"] - 0.1) < 0.015, stats
    assert abs(stats["kept"] / stats["masked"] - 0.1) < 0.015, stats


def test_whole_word_masking_masks_whole_words(env: SimpleNamespace) -> None:
    pairs = masked_and_plain(env, epochs=4, whole_word_masking=True)
    stats = mlm_stats(env, pairs)
    assert 0.12 < stats["masked"] / stats["maskable"] <= 0.16, stats
    specials = set(env.tokenizer.all_special_ids)
    multi_piece_words = 0
    for batch, plain in pairs:
        masked = (batch["labels"] != IGNORE_INDEX).tolist()
        for row, row_masked in zip(plain["input_ids"].tolist(), masked, strict=True):
            words: list[list[int]] = []
            for j, token in enumerate(env.tokenizer.convert_ids_to_tokens(row)):
                if row[j] in specials:
                    continue
                if token.startswith("##") and words and words[-1][-1] == j - 1:
                    words[-1].append(j)
                else:
                    words.append([j])
            for word in words:
                assert len({row_masked[j] for j in word}) == 1, (row, word)
                multi_piece_words += len(word) > 1 and row_masked[word[0]]
    assert multi_piece_words > 50  # the corpus does exercise words of several pieces


# --------------------------------------------------------------------------------------------------
# Padding, layout and reproducibility
# --------------------------------------------------------------------------------------------------


def test_padding_and_token_types(env: SimpleNamespace) -> None:
    collator = PostTrainingCollator(env.tokenizer, env.pool)
    batch = collator(env.windows[:13])
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "urc_labels"}
    assert all(t.dtype == torch.long for t in batch.values())
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0 and batch["urc_labels"].shape == (13,)
    lengths = batch["attention_mask"].sum(1)
    assert lengths.max() > width - 8
    for i, n in enumerate(lengths.tolist()):
        assert batch["attention_mask"][i, :n].all() and not batch["attention_mask"][i, n:].any()
        assert (batch["input_ids"][i, n:] == env.special.pad).all()
        assert (batch["labels"][i, n:] == IGNORE_INDEX).all()
        assert not batch["token_type_ids"][i, n:].any()
        ids = original_ids(batch)[i, :n].tolist()
        types = batch["token_type_ids"][i, :n].tolist()
        first_sep = ids.index(env.special.sep)
        assert ids[0] == env.special.cls and ids[-1] == env.special.sep and ids.count(env.special.sep) == 2
        assert types == [0] * (first_sep + 1) + [1] * (n - first_sep - 1)
        window = env.windows[i]
        context = env.utterances[window["dialogue"]][window["start"] : window["position"]]
        assert ids[1:first_sep] == sum(([env.special.eot, *u] for u in context), [])[1:]


def test_collator_left_truncates_to_max_length(env: SimpleNamespace) -> None:
    collator = PostTrainingCollator(
        env.tokenizer, env.pool, max_length=20, mlm_probability=0.0, urc_probabilities=(0.0, 0.0, 1.0)
    )
    windows = [w for w in env.windows if w["position"] - w["start"] == 3][:32]
    batch = collator(windows)
    assert batch["input_ids"].shape[1] == 20  # padding to a multiple of 8 stops at max_length
    cut = 0
    for i, window in enumerate(windows):
        ids = batch["input_ids"][i].tolist()
        first_sep = ids.index(env.special.sep)
        kept = ids[1:first_sep]
        full = flat_context(env, env.utterances[window["dialogue"]][window["start"] : window["position"]])
        assert full[len(full) - len(kept) :] == kept  # a suffix: the latest turns
        response = response_part(batch["input_ids"][i], batch["token_type_ids"][i])
        assert response == env.utterances[window["dialogue"]][window["position"]][: len(response)]
        cut += len(kept) < len(full)
    assert cut > len(windows) // 2


def test_same_seed_and_epoch_reproduce_and_epochs_differ(env: SimpleNamespace) -> None:
    windows = env.windows[:32]
    first = PostTrainingCollator(env.tokenizer, env.pool)(windows)
    again = PostTrainingCollator(env.tokenizer, env.pool)(windows)
    for key in first:
        assert torch.equal(first[key], again[key])
    next_epoch = PostTrainingCollator(env.tokenizer, env.pool, epoch=1)(windows)
    other_seed = PostTrainingCollator(env.tokenizer, env.pool, seed=7)(windows)
    for other in (next_epoch, other_seed):
        assert not torch.equal(first["urc_labels"], other["urc_labels"])
        assert not torch.equal(first["labels"], other["labels"])


def test_an_examples_draws_do_not_depend_on_its_batch(env: SimpleNamespace) -> None:
    collator = PostTrainingCollator(env.tokenizer, env.pool, epoch=3)
    windows = env.windows[:24]
    together = collator(windows)
    shuffled_order = list(range(24))
    random.Random(0).shuffle(shuffled_order)
    shuffled = collator([windows[i] for i in shuffled_order])
    for k, i in enumerate(shuffled_order):
        alone = collator([windows[i]])
        n = int(alone["attention_mask"].sum())
        for key in ("input_ids", "labels", "token_type_ids"):
            assert torch.equal(together[key][i, :n], alone[key][0, :n])
            assert torch.equal(shuffled[key][k, :n], alone[key][0, :n])
        assert together["urc_labels"][i] == alone["urc_labels"][0] == shuffled["urc_labels"][k]


def test_epoch_callback_sets_the_epoch(env: SimpleNamespace, tmp_path: Path) -> None:
    collator = PostTrainingCollator(env.tokenizer, env.pool)
    callback = CollatorEpochCallback(collator)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    for epoch, expected in ((0.0, 0), (2.0, 2), (1.5, 1)):  # 1.5: resumed in the middle of epoch 1
        callback.on_epoch_begin(args, TrainerState(epoch=epoch), TrainerControl())
        assert collator.epoch == expected


# --------------------------------------------------------------------------------------------------
# Response selection
# --------------------------------------------------------------------------------------------------


def test_response_selection_training_pairs(env: SimpleNamespace) -> None:
    collator = ResponseSelectionCollator(env.tokenizer, env.pool)
    rows = env.pairs[:40]
    batch = collator(rows)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "group_id", "candidate_index"}
    assert all(t.dtype == torch.long for t in batch.values())
    assert batch["labels"].tolist() == [r["label"] for r in rows] and set(batch["labels"].tolist()) == {0, 1}
    assert batch["group_id"].tolist() == [-1] * 40
    assert batch["candidate_index"].tolist() == [-1] * 40
    assert batch["input_ids"].shape[1] % 8 == 0
    for i, row in enumerate(rows):
        ids, types = batch["input_ids"][i], batch["token_type_ids"][i]
        if row["label"] == 1:
            assert int(batch["attention_mask"][i].sum()) == row["length"]  # the rows' length estimate is exact
        candidate = env.utterances[row["candidate_dialogue"]][row["candidate_position"]]
        assert response_part(ids, types) == candidate
        context = env.utterances[row["dialogue"]][row["start"] : row["position"]]
        assert ids[1 : ids.tolist().index(env.special.sep)].tolist() == flat_context(env, context)
    assert torch.equal(collator(rows)["input_ids"], batch["input_ids"])  # no randomness


def test_response_selection_groups_and_left_truncation(env: SimpleNamespace) -> None:
    groups = [
        {
            "group_id": f"g{g}",
            "context": ["가나 다라 마바 사아", "자차 카타 파하", "거너 더러 머버", "서어 저처 커터", "퍼허 고노"],
            "candidates": ["도로 모보", "소오 조초 가나", "다라"],
            "labels": [0, 1, 0],
        }
        for g in range(3)
    ]
    pairs, pool, group_ids = groups_to_pairs(groups, env.tokenizer)
    rows = pairs.to_list()
    batch = ResponseSelectionCollator(env.tokenizer, pool, max_length=16)(rows)
    assert group_ids == ["g0", "g1", "g2"]
    assert batch["group_id"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert batch["candidate_index"].tolist() == [0, 1, 2] * 3
    assert batch["labels"].tolist() == [0, 1, 0] * 3
    utterances = pool.fetch(range(3))
    for i, row in enumerate(rows):
        ids = batch["input_ids"][i].tolist()
        assert int(batch["attention_mask"][i].sum()) <= 16
        kept = ids[1 : ids.index(env.special.sep)]
        full = flat_context(env, utterances[row["dialogue"]][: row["position"]])
        assert len(kept) < len(full) and full[len(full) - len(kept) :] == kept
        assert (
            response_part(batch["input_ids"][i], batch["token_type_ids"][i])
            == (utterances[row["dialogue"]][row["candidate_position"]])
        )
