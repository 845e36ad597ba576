"""Tokenisation and example tables: what the collators read.

Each utterance is tokenised once (``datasets.map``, batched and cached), however many windows or
pairs it appears in. Windows and pairs are then tables of integers that point into the tokenised
dialogues (a :class:`DialoguePool`); the collators assemble ``[CLS] context [SEP] response [SEP]``
at batch time. This keeps the Arrow cache small and lets candidates be drawn afresh every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, Features, Value, concatenate_datasets
from datasets import Sequence as HFSequence
from transformers import PreTrainedTokenizerBase

from ko_mrs.negatives import NegativeSampler, context_rng

EOT_TOKEN = "[EOT]"
# Tokens per assembled pair, where a run or a ResponseSelector gives none (fine-tuning records its own value in the
# model config as `mrs_max_length`, and ranking reads it back from there).
DEFAULT_MAX_LENGTH = 256

WINDOW_FEATURES = Features(
    {name: Value("int64") for name in ("dialogue", "start", "position", "length")},
)
# A pair row: the context (utterances start..position-1 of dialogue), the candidate, its label, and where it sits in
# its evaluation group (``group_id`` is the group's index, ``candidate_index`` the candidate's; -1 for training rows).
PAIR_COLUMNS = (
    "dialogue",
    "start",
    "position",
    "candidate_dialogue",
    "candidate_position",
    "label",
    "group_id",
    "candidate_index",
)
PAIR_FEATURES = Features({name: Value("int64") for name in PAIR_COLUMNS} | {"length": Value("int64")})
# A listwise row: one context and its candidate list (positive first), the candidate columns as lists.
CANDIDATE_COLUMNS = ("candidate_dialogue", "candidate_position", "label")
LIST_FEATURES = Features(
    {name: HFSequence(Value("int64")) if name in CANDIDATE_COLUMNS else Value("int64") for name in PAIR_FEATURES}
)


def add_eot_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """Add ``[EOT]`` as a special token (never split, never masked) and return its id."""
    if EOT_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [EOT_TOKEN]})
    elif EOT_TOKEN not in tokenizer.all_special_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": [EOT_TOKEN]})
    return tokenizer.convert_tokens_to_ids(EOT_TOKEN)


def tokenize_dialogues(
    dialogues: Dataset, tokenizer: PreTrainedTokenizerBase, *, batch_size: int = 1000, num_proc: int | None = None
) -> Dataset:
    """Add ``utterance_ids`` (no special tokens) and ``utterance_lengths``; cached by ``datasets``."""

    def encode(batch: dict) -> dict:
        flat = [text for turns in batch["utterances"] for text in turns]
        ids = tokenizer(flat, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)[
            "input_ids"
        ]
        out_ids, out_lengths, i = [], [], 0
        for turns in batch["utterances"]:
            chunk = ids[i : i + len(turns)]
            i += len(turns)
            out_ids.append(chunk)
            out_lengths.append([len(x) for x in chunk])
        return {"utterance_ids": out_ids, "utterance_lengths": out_lengths}

    features = dialogues.features.copy()
    features["utterance_ids"] = HFSequence(HFSequence(Value("int32")))
    features["utterance_lengths"] = HFSequence(Value("int32"))
    return dialogues.map(
        encode, batched=True, batch_size=batch_size, num_proc=num_proc, features=features, desc="Tokenising"
    )


def corpus_codes(dataset: Dataset) -> np.ndarray:
    """Integer code of each dialogue's corpus, read from Arrow without building Python strings."""
    column = dataset.with_format("arrow")["corpus"]
    encoded = pc.dictionary_encode(column)
    chunks = encoded.chunks if hasattr(encoded, "chunks") else [encoded]
    # chunks may carry different dictionaries; unify them through the dictionary values
    names: dict[str, int] = {}
    out = []
    for chunk in chunks:
        remap = np.array([names.setdefault(v, len(names)) for v in chunk.dictionary.to_pylist()] or [0], np.int32)
        out.append(remap[chunk.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(out) if out else np.zeros(0, np.int32)


class DialoguePool:
    """Dialogues as the collators and the :class:`~ko_mrs.negatives.NegativeSampler` see them.

    Each dialogue's number of turns and corpus (all one corpus without ``same_corpus_negatives``) and, when
    tokenised, its utterance ids. Evaluation groups are drawn from an untokenised pool (texts only).
    ``extra``: tokenised rows after the dialogues (generated adversarial replies) that candidates may point to
    (row ``len(dialogues) + i``) but random draws never reach: they are not dialogues.
    Speakers (one name per turn, or none) are read only when a selector uses them (:mod:`ko_mrs.speakers`).
    """

    def __init__(self, dialogues: Dataset, *, same_corpus_negatives: bool = True, extra: Dataset | None = None) -> None:
        self.ids = dialogues.select_columns(["utterance_ids"]) if "utterance_ids" in dialogues.column_names else None
        self.speakers = dialogues.select_columns(["speakers"]) if "speakers" in dialogues.column_names else None
        if extra is not None:
            if self.ids is None:
                raise ValueError("extra rows need a tokenised pool")
            self.ids = concatenate_datasets([self.ids, extra.select_columns(["utterance_ids"])])
        self.num_turns = np.asarray(dialogues.with_format("numpy")["num_turns"], dtype=np.int64)
        codes = corpus_codes(dialogues) if same_corpus_negatives else np.zeros(len(dialogues), np.int32)
        self.corpus = codes
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(codes.max() + 2 if len(codes) else 1))
        self.members = [order[bounds[c] : bounds[c + 1]] for c in range(len(bounds) - 1)]

    def __len__(self) -> int:
        return len(self.num_turns)

    def corpus_members(self, dialogue: int) -> np.ndarray:
        """The dialogues of ``dialogue``'s corpus, itself included, in order."""
        return self.members[self.corpus[dialogue]]

    def fetch(self, indices: Sequence[int]) -> dict[int, list[list[int]]]:
        """Utterance ids of the given dialogues, one Arrow read for the batch."""
        if self.ids is None:
            raise ValueError("this pool holds untokenised dialogues; build it from tokenize_dialogues' output")
        unique = sorted(set(int(i) for i in indices))
        rows = self.ids[unique]["utterance_ids"]
        return dict(zip(unique, rows, strict=True))

    def fetch_speakers(self, indices: Sequence[int]) -> dict[int, list[str]]:
        """Speakers of the given dialogues, one Arrow read; an empty list where none were recorded."""
        unique = sorted(set(int(i) for i in indices))
        if self.speakers is None:
            return dict.fromkeys(unique, [])
        return dict(zip(unique, self.speakers[unique]["speakers"], strict=True))


def _explode(tokenized: Dataset, explode, features: Features, desc: str) -> Dataset:
    """Map each dialogue's utterance lengths to example rows (cached by ``datasets`` like any map)."""
    return tokenized.map(
        explode,
        batched=True,
        with_indices=True,
        input_columns=["utterance_lengths"],
        remove_columns=tokenized.column_names,
        features=features,
        desc=desc,
    )


def _assembled_length(lengths: Sequence[int], start: int, t: int, response_length: int) -> int:
    """Tokens of ``[CLS] ctx [EOT] ... ctx [SEP] response [SEP]`` before truncation."""
    return sum(lengths[start:t]) + (t - start - 1) + response_length + 3


def build_windows(tokenized: Dataset, *, window: int = 3) -> Dataset:
    """Post-training windows: ``window`` utterances of context and the next one, one per position.

    ``length`` estimates the assembled length (context + [EOT]s + response + 3 specials) for
    length-grouped batching.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")

    def explode(lengths_batch: list[list[int]], indices: list[int]) -> dict:
        out: dict[str, list[int]] = {key: [] for key in WINDOW_FEATURES}
        for dialogue, lengths in zip(indices, lengths_batch, strict=True):
            for t in range(1, len(lengths)):
                start = max(0, t - window)
                out["dialogue"].append(dialogue)
                out["start"].append(start)
                out["position"].append(t)
                out["length"].append(_assembled_length(lengths, start, t, lengths[t]))
        return out

    return _explode(tokenized, explode, WINDOW_FEATURES, "Building windows")


def build_pairs(
    tokenized: Dataset,
    pool: DialoguePool,
    *,
    every_prefix: bool = True,
    negatives_per_positive: int = 1,
    max_turns: int | None = None,
    seed: int = 0,
    listwise: bool = False,
    sampler: NegativeSampler | None = None,
) -> Dataset:
    """Fine-tuning examples: each context prefix with its true next utterance plus random negatives.

    With ``every_prefix`` every position of a dialogue is a context (the paper's augmentation);
    otherwise only the last one. Negatives are drawn once here, reproducibly from ``seed``, by ``sampler``
    (random negatives from ``pool`` when None; a :class:`negatives.NegativeSampler` mixes in hard ones).
    Pointwise (default): one row per (context, candidate) pair. ``listwise``: one row per context whose
    ``candidate_*`` and ``label`` columns are lists, positive first, for a softmax over the group.
    """
    features = LIST_FEATURES if listwise else PAIR_FEATURES
    sampler = sampler or NegativeSampler(pool)

    def explode(lengths_batch: list[list[int]], indices: list[int]) -> dict:
        out: dict[str, list] = {key: [] for key in features}
        hard, generated = sampler.hard_rows(indices), sampler.adversarial_rows(indices)
        for dialogue, lengths in zip(indices, lengths_batch, strict=True):
            rng = context_rng(seed, dialogue)
            positions = range(1, len(lengths)) if every_prefix else [len(lengths) - 1]
            for t in positions:
                start = 0 if max_turns is None else max(0, t - max_turns)
                candidates = [(dialogue, t, 1)]
                mined = hard[dialogue][t - 1] if dialogue in hard else ()
                made = generated[dialogue][t - 1] if dialogue in generated else ()
                for negative in sampler.draw(dialogue, negatives_per_positive, rng, mined, made):
                    candidates.append((negative.dialogue, negative.position, 0))
                context = {"dialogue": dialogue, "start": start, "position": t, "group_id": -1, "candidate_index": -1}
                context["length"] = _assembled_length(lengths, start, t, lengths[t])
                if listwise:
                    context["length"] *= len(candidates)  # what the group costs, for length-grouped batching
                    rows = [
                        {
                            **context,
                            **dict(zip(CANDIDATE_COLUMNS, map(list, zip(*candidates, strict=True)), strict=True)),
                        }
                    ]
                else:
                    rows = [{**context, **dict(zip(CANDIDATE_COLUMNS, c, strict=True))} for c in candidates]
                for row in rows:
                    for key in features:
                        out[key].append(row[key])
        return out

    return _explode(tokenized, explode, features, "Building pairs")


def groups_to_pairs(
    groups: Sequence[dict], tokenizer: PreTrainedTokenizerBase, *, max_turns: int | None = None
) -> tuple[Dataset, DialoguePool, list[str]]:
    """Evaluation groups as pair rows over a pool of their own: one pool row per group.

    Each row carries its group index, so scores are matched to groups by id, never by row order.
    Returns the pairs, the pool and the group ids (index -> ``group_id``). A group's ``speakers`` (one per
    context turn) and ``reply_speaker`` go into the pool as the speakers of its context and of every candidate;
    a group without them gets none (two-party alternation, see :mod:`ko_mrs.speakers`).
    """
    turns = [[*(g["context"] if max_turns is None else g["context"][-max_turns:]), *g["candidates"]] for g in groups]
    speakers = [_group_speakers(g, len(t) - len(g["candidates"])) for g, t in zip(groups, turns, strict=True)]
    pool_rows = Dataset.from_dict(
        {
            "utterances": turns,
            "speakers": speakers,
            "num_turns": [len(t) for t in turns],
            "corpus": ["groups"] * len(groups),
        },
        features=Features(
            {
                "utterances": HFSequence(Value("string")),
                "speakers": HFSequence(Value("string")),
                "num_turns": Value("int64"),
                "corpus": Value("string"),
            }
        ),
    )
    tokenized = tokenize_dialogues(pool_rows, tokenizer)
    pool = DialoguePool(tokenized, same_corpus_negatives=False)
    rows: dict[str, list[int]] = {key: [] for key in PAIR_FEATURES}
    for g, (group, lengths) in enumerate(zip(groups, tokenized["utterance_lengths"], strict=True)):
        n_context = len(turns[g]) - len(group["candidates"])
        for j, label in enumerate(group["labels"]):
            for key, value in (
                ("dialogue", g),
                ("start", 0),
                ("position", n_context),
                ("candidate_dialogue", g),
                ("candidate_position", n_context + j),
                ("label", int(label)),
                ("group_id", g),
                ("candidate_index", j),
                ("length", _assembled_length(lengths, 0, n_context, lengths[n_context + j])),
            ):
                rows[key].append(value)
    return Dataset.from_dict(rows, features=PAIR_FEATURES), pool, [str(g["group_id"]) for g in groups]


def _group_speakers(group: dict, num_context: int) -> list[str]:
    """Speakers of a group's last ``num_context`` context turns, then its reply speaker once per candidate."""
    if not group.get("speakers"):
        return []
    context = group["speakers"][len(group["context"]) - num_context :]
    return [*context, *[group["reply_speaker"]] * len(group["candidates"])]
