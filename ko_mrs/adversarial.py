"""Adversarial negatives: rule-based Korean perturbations of the true reply, and a pairwise evaluator.

A word-overlap scorer picks the reply that repeats the context's words. Each perturbation below keeps most of the
true reply's words (or the context's) and changes what it says, so a selector that leans on keywords fails
it. Every function takes the true reply (and, where it needs them, the context or other utterances) and returns
the perturbed reply, or ``None`` where the rule does not apply. They work on Kiwi morphemes (``kiwipiepy``) and
re-join them with Kiwi, which conjugates stems and picks particle forms (을/를, 이/가) itself.

    mrs-eval make --dialogues data/demo/test.jsonl --out runs/adversarial/demo.jsonl
    mrs-eval adversarial runs/adversarial/demo.jsonl --model runs/demo/fine-tuned

The suite file has one JSON object a line, ``{"context": [...], "candidates": [{"text": ..., "label": 1},
{"text": ..., "label": 0}], "type": "negation"}`` (the type may also come from the file name). The evaluator
reports pairwise accuracy per type and overall, ties counted wrong, beside BM25 on the same pairs.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from datasets import Dataset, Features, List, Value
from datasets.fingerprint import Hasher

from ko_mrs.bm25 import bm25_scores
from ko_mrs.cli_errors import UsageError, check_output_file, cli_main
from ko_mrs.negatives import MINED_FEATURES, kiwi, normalise

__all__ = [
    "PERTURBATIONS",
    "AdversarialPair",
    "GeneratedNegatives",
    "TypeAccuracy",
    "evaluate_adversarial",
    "generate_negatives",
    "interrogative",
    "lexical_contradiction",
    "make_adversarial_suite",
    "negation",
    "read_adversarial_files",
    "repetition",
    "subject_object_swap",
    "tense",
    "topic",
]

Morpheme = tuple[str, str]  # (form, part-of-speech tag), as Kiwi.join takes them

# Antonym stems the project writes (adjectives and verbs); both directions are used.
ANTONYMS: dict[str, str] = dict(
    pair
    for a, b in (
        ("좋", "싫"),
        ("좋아하", "싫어하"),
        ("크", "작"),
        ("많", "적"),
        ("길", "짧"),
        ("높", "낮"),
        ("쉽", "어렵"),
        ("덥", "춥"),
        ("빠르", "느리"),
        ("비싸", "싸"),
        ("넓", "좁"),
        ("무겁", "가볍"),
        ("밝", "어둡"),
        ("맛있", "맛없"),
        ("재밌", "재미없"),
        ("가깝", "멀"),
        ("뜨겁", "차갑"),
        ("이기", "지"),
        ("열", "닫"),
        ("사", "팔"),
        ("늘", "줄"),
        ("편하", "불편하"),
        ("조용하", "시끄럽"),
        ("깨끗하", "더럽"),
        ("맞", "틀리"),
        ("부르", "고프"),
    )  # fmt: skip
    for pair in ((a, b), (b, a))
)
_PAST = {"었", "았", "였", "ᆻ"}
# Endings that take no past tense: promises, suggestions, "shall we"
_NO_PAST = {"ᆯ게요", "ᆯ게", "을게요", "을게", "ᆸ시다", "읍시다", "자", "ᆯ까요", "을까요", "ᆯ래요", "을래요", "ᆯ래", "을래"}
# The ending after the future -ㄹ 거이- once it becomes the past -었-
_AFTER_FUTURE = {"예요": "어요", "에요": "어요", "야": "어", "다": "다", "ᆸ니다": "습니다"}
_PREDICATES = ("VV", "VA", "VX", "VCP", "VCN", "XSV", "XSA")
_LEXICAL_PREDICATES = ("VV", "VA", "XSV", "XSA", "VCP")
_NOUNS = ("NNG", "NNP", "NP")
_QUESTION_TO_STATEMENT = {
    "습니까": "습니다",
    "ᆸ니까": "ᆸ니다",
    "나요": "어요",
    "ᆫ가요": "어요",
    "은가요": "어요",
    "니": "어",
}
_STATEMENT_TO_QUESTION = {"습니다": "습니까", "ᆸ니다": "ᆸ니까"}
# Requests and suggestions: their negation is -지 말다 (가세요 -> 가지 마세요, 가자 -> 가지 말자)
_PROHIBITIVE: dict[str, tuple[Morpheme, ...]] = {
    "세요": (("말", "VX"), ("세요", "EF")),
    "으세요": (("말", "VX"), ("세요", "EF")),
    "자": (("말", "VX"), ("자", "EF")),
    "ᆸ시다": (("말", "VX"), ("ᆸ시다", "EF")),
}
# Nouns too common to be what a context is about
_PLAIN_NOUNS = {
    "오늘",
    "내일",
    "모레",
    "어제",
    "이번",
    "다음",
    "정도",
    "생각",
    "때문",
    "사람",
    "시간",
    "말씀",
    "진짜",
    "하나",
}


class Morph(NamedTuple):
    """A Kiwi morpheme and the characters of the text it came from (``end`` exclusive)."""

    form: str
    tag: str
    start: int
    end: int


@lru_cache(maxsize=1 << 16)
def morphemes(text: str) -> tuple[Morph, ...]:
    """Kiwi's analysis, tags without their regular/irregular suffix (``VV-R`` -> ``VV``).

    Cached: the seven perturbations of one reply (and the context turns of its neighbours) share one analysis.
    """
    return tuple(Morph(t.form, t.tag.split("-")[0], t.start, t.start + t.len) for t in kiwi().tokenize(text))


class Edit(NamedTuple):
    """Replace morphemes ``first`` .. ``last - 1`` (``first == last``: insert before ``first``) by ``new``."""

    first: int
    last: int
    new: tuple[Morpheme, ...]


def _apply(text: str, parts: Sequence[Morph], *edits: Edit) -> str:
    """The text with the edits made, re-joined by Kiwi only within the eojeols they touch.

    Re-joining the whole reply would also re-space the words the rule left alone ("쌀국수집" -> "쌀국수 집"), a
    surface cue a model could learn instead of the meaning; here every untouched character stays as it was.
    """
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]

    def word_of(index: int) -> int:
        at = parts[min(index, len(parts) - 1)].start
        return next(w for w, (a, b) in enumerate(words) if a <= at < b or at < a)

    out, cursor = [], 0
    for edit in sorted(edits):
        first_word, last_word = word_of(edit.first), word_of(max(edit.first, edit.last - 1))
        a, b = words[first_word][0], words[last_word][1]
        inside = [i for i, m in enumerate(parts) if a <= m.start < b]
        lo, hi = min(inside[0], edit.first), max(inside[-1] + 1, edit.last)
        merged = [(m.form, m.tag) for m in parts[lo : edit.first]] + list(edit.new)
        merged += [(m.form, m.tag) for m in parts[edit.last : hi]]
        joined = kiwi().join(merged) if merged else ""
        if not joined:  # a whole eojeol went away: so does the space after it
            b = len(text) - len(text[b:].lstrip())
        out += [text[cursor:a], joined]
        cursor = b
    return "".join([*out, text[cursor:]])


def _changed(original: str, perturbed: str | None) -> str | None:
    """The perturbation, or None when it changed nothing but spacing (punctuation counts: ? against .)."""
    if perturbed is None or "".join(perturbed.split()) == "".join(original.split()) or not normalise(perturbed):
        return None
    return perturbed


def _final_ending(parts: Sequence[Morph]) -> int | None:
    """Index of the last sentence-final ending (EF): the predicate rules act on the reply's last sentence."""
    return next((i for i in range(len(parts) - 1, -1, -1) if parts[i].tag == "EF"), None)


def _last_predicate(parts: Sequence[Morph], before: int, tags: tuple[str, ...]) -> int | None:
    return next((i for i in range(before - 1, -1, -1) if parts[i].tag in tags), None)


# --------------------------------------------------------------------------------------------------
# The perturbations
# --------------------------------------------------------------------------------------------------


def repetition(reply: str, context: Sequence[str]) -> str | None:
    """An earlier context utterance offered as the reply: the same speaker's last turn (two back), else the last.

    >>> repetition("네, 3주 정도 걸려요.", ["출고는 언제 돼요?", "바로 출고돼요?", "빨간색이요."])
    '바로 출고돼요?'
    """
    for turn in (context[-2:-1] or []) + list(context[-1:]):
        if _changed(reply, turn):
            return turn
    return None


def negation(reply: str) -> str | None:
    """Flip the polarity of the last sentence: 있다 <-> 없다, drop 안/못 or -지 않다, 이다 -> 아니다, else add 안.

    >>> negation("재고가 있어요.")
    '재고가 없어요.'
    >>> negation("저는 내일 학교에 가요.")
    '저는 내일 학교에 안 가요.'
    >>> negation("못 가요.")
    '가요.'
    >>> negation("저는 학생입니다.")
    '저는 학생이 아닙니다.'
    >>> negation("기사님이 먼저 전화드릴 거예요.")
    '기사님이 먼저 전화 안 드릴 거예요.'
    >>> negation("언제든 문의해 주세요.")
    '언제든 문의해 주지 마세요.'
    >>> negation("삼겹살 먹으러 가자.")
    '삼겹살 먹으러 가지 말자.'
    """
    parts = morphemes(reply)
    end = _final_ending(parts)
    if end is None:
        return None
    for i in range(end - 1, -1, -1):  # an existing negation: take it away
        if parts[i][:2] == ("않", "VX") and i > 0 and parts[i - 1][:2] == ("지", "EC"):
            return _changed(reply, _apply(reply, parts, Edit(i - 1, i + 1, ())))
        if parts[i].tag == "MAG" and parts[i].form in ("안", "못"):
            return _changed(reply, _apply(reply, parts, Edit(i, i + 1, ())))
    if parts[end].form in _PROHIBITIVE:  # requests and suggestions negate as -지 마세요 / -지 말자
        return _changed(reply, _apply(reply, parts, Edit(end, end + 1, (("지", "EC"), *_PROHIBITIVE[parts[end].form]))))
    i = _last_predicate(parts, end, _LEXICAL_PREDICATES)
    if i is None:
        return None
    form, tag = parts[i][:2]
    if tag == "VCP" and i >= 2 and parts[i - 1].form in ("거", "것") and parts[i - 2].tag == "ETM":
        i = _last_predicate(parts, i - 2, _LEXICAL_PREDICATES)  # -ㄹ 거예요: negate the verb, not the 이다
        if i is None:
            return None
        form, tag = parts[i][:2]
    if form in ("있", "없") and tag in ("VA", "VV"):
        return _changed(reply, _apply(reply, parts, Edit(i, i + 1, (("없" if form == "있" else "있", "VA"),))))
    if tag == "VCP":
        return _changed(reply, _apply(reply, parts, Edit(i, i + 1, (("이", "JKC"), ("아니", "VCN")))))
    return _changed(reply, _apply(reply, parts, Edit(i, i, (("안", "MAG"),))))


def tense(reply: str) -> str | None:
    """Past <-> present/future in the last sentence: drop the past marker -었-, or put it in.

    -ㄹ 거예요 (future) becomes the past as well. Promises and suggestions (-ㄹ게요, -ㅂ시다) take no past.

    >>> tense("출고까지 3주 정도 걸려요.")
    '출고까지 3주 정도 걸렸어요.'
    >>> tense("어제 비가 왔어요.")
    '어제 비가 와요.'
    >>> tense("내일 비가 올 거예요.")
    '내일 비가 왔어요.'
    >>> tense("축제 준비 때문에 바빠질 거야.")
    '축제 준비 때문에 바빠졌어.'
    >>> tense("언제든 말씀해 주세요.")
    '언제든 말씀해 주셨어요.'
    """
    parts = morphemes(reply)
    end = _final_ending(parts)
    if end is None:
        return None
    past = [i for i in range(end) if parts[i].tag == "EP" and parts[i].form in _PAST]
    if past and past[-1] >= end - 2:
        return _changed(reply, _apply(reply, parts, Edit(past[-1], past[-1] + 1, ())))
    if end >= 3 and parts[end - 3][:2] in (("ᆯ", "ETM"), ("을", "ETM")) and parts[end - 2].form == "거":
        ending = _AFTER_FUTURE.get(parts[end].form)
        if ending is None:
            return None
        return _changed(reply, _apply(reply, parts, Edit(end - 3, end + 1, (("었", "EP"), (ending, "EF")))))
    if parts[end].form in _NO_PAST:
        return None
    if parts[end].form in ("세요", "으세요"):  # the honorific request: -시- + -었- + -어요
        return _changed(reply, _apply(reply, parts, Edit(end, end + 1, (("시", "EP"), ("었", "EP"), ("어요", "EF")))))
    j = end - 1
    while j >= 0 and parts[j].tag == "EP":  # honorific -시- stays next to the stem, the past marker after it
        j -= 1
    if j < 0 or parts[j].tag not in _PREDICATES:
        return None
    return _changed(reply, _apply(reply, parts, Edit(end, end, (("었", "EP"),))))


def _noun_run(parts: Sequence[Morph], particle: int) -> tuple[int, int] | None:
    """The nouns right before ``particle`` within its eojeol (a compound such as 이차+함수), as (first, last)."""
    last = particle
    first = last
    while (
        first > 0 and parts[first - 1].tag in _NOUNS and (first == last or parts[first].start == parts[first - 1].end)
    ):
        first -= 1
    return (first, last) if first < last else None


def subject_object_swap(reply: str) -> str | None:
    """Swap the noun marked by 이/가 (or the topic 은/는) with the noun marked by 을/를 of the same sentence.

    >>> subject_object_swap("동생이 고양이를 좋아해요.")
    '고양이가 동생을 좋아해요.'
    >>> subject_object_swap("이차함수는 문제를 많이 풀어 봐.")
    '문제는 이차 함수를 많이 풀어 봐.'
    """
    parts = morphemes(reply)
    sentence = 0  # where the current sentence starts
    found: dict[str, tuple[int, int]] = {}
    for i, m in enumerate(parts):
        if m.tag == "SF":
            sentence, found = i + 1, {}
            continue
        role = (
            "object"
            if m.tag == "JKO"
            else "subject"
            if m.tag == "JKS" or (m.tag == "JX" and m.form in ("은", "는"))
            else None
        )
        run = _noun_run(parts, i) if role else None
        if run and run[0] >= sentence:
            found.setdefault(role, run)
        if "subject" in found and "object" in found:
            (s0, s1), (o0, o1) = found["subject"], found["object"]
            subject = tuple((m.form, m.tag) for m in parts[s0:s1])
            obj = tuple((m.form, m.tag) for m in parts[o0:o1])
            if subject == obj:
                return None
            return _changed(
                reply,
                _apply(
                    reply, parts, Edit(s0, s1 + 1, (*obj, parts[s1][:2])), Edit(o0, o1 + 1, (*subject, parts[o1][:2]))
                ),
            )
    return None


def lexical_contradiction(reply: str) -> str | None:
    """Swap the last predicate stem that has an antonym in :data:`ANTONYMS` (좋다/싫다, 크다/작다, ...).

    >>> lexical_contradiction("이 차는 트렁크가 커서 좋아요.")
    '이 차는 트렁크가 커서 싫어요.'
    """
    parts = morphemes(reply)
    for i in range(len(parts) - 1, -1, -1):
        form, tag = parts[i][:2]
        if tag in ("VA", "VV") and form in ANTONYMS:
            return _changed(reply, _apply(reply, parts, Edit(i, i + 1, ((ANTONYMS[form], tag),))))
    return None


def interrogative(reply: str) -> str | None:
    """A statement turned into a question, or a question into a statement (its last sentence).

    >>> interrogative("견적서를 준비했습니다.")
    '견적서를 준비했습니까?'
    >>> interrogative("그 식당 음식이 맛있어요?")
    '그 식당 음식이 맛있어요.'
    """
    parts = morphemes(reply)
    end = _final_ending(parts)
    if end is None:
        return None
    form = parts[end].form
    mark = end + 1 if end + 1 < len(parts) and parts[end + 1].tag == "SF" else None
    question = mark is not None and parts[mark].form == "?"
    if question:
        ending, punctuation = _QUESTION_TO_STATEMENT.get(form, form), "."
    elif form in _STATEMENT_TO_QUESTION or form.endswith("요"):
        ending, punctuation = _STATEMENT_TO_QUESTION.get(form, form), "?"
    else:
        return None
    last = mark + 1 if mark is not None else end + 1
    return _changed(reply, _apply(reply, parts, Edit(end, last, ((ending, "EF"), (punctuation, "SF")))))


def context_keyword(context: Sequence[str]) -> str | None:
    """The context's most telling noun: the most frequent, the latest turn breaking ties.

    Common nouns (오늘, 정도, ...) are never the keyword: a keyword matcher keys on what the dialogue is about.
    """
    counts: Counter[str] = Counter()
    latest: dict[str, int] = {}
    for turn_index, turn in enumerate(context):
        for m in morphemes(turn):
            if m.tag in ("NNG", "NNP") and m.form not in _PLAIN_NOUNS:
                counts[m.form] += 1
                latest[m.form] = turn_index
    if not counts:
        return None
    return max(counts, key=lambda noun: (counts[noun], latest[noun]))


def topic(
    reply: str,
    context: Sequence[str],
    others: Sequence[str],
    rng: random.Random,
) -> str | None:
    """Keep the context's keyword, change what the reply is about: an utterance of another dialogue whose first
    noun is replaced by the context's keyword (the README's trap, 저는 농구를 좋아합니다 -> 저는 차를 좋아합니다).

    >>> topic("자동차는 신중히 골라야 해요.", ["어떤 차를 사야 할지 모르겠어요.", "차는 오래 타요."],
    ...       ["저는 농구를 좋아합니다."], random.Random(0))
    '저는 차를 좋아합니다.'
    """
    keyword = context_keyword(context)
    if keyword is None:
        return None
    for other in rng.sample(list(others), min(len(others), 8)):
        parts = morphemes(other)
        if any(m.form == keyword for m in parts):
            continue
        for i, m in enumerate(parts[:-1]):
            if m.tag in ("NNG", "NNP") and m.form not in _PLAIN_NOUNS and parts[i + 1].tag.startswith("J"):
                perturbed = _changed(reply, _apply(other, parts, Edit(i, i + 1, ((keyword, "NNG"),))))
                if perturbed is not None:
                    return perturbed
    return None


class Perturbation(NamedTuple):
    """A perturbation type and how it is applied to (reply, context, other utterances, rng)."""

    name: str
    apply: Callable[[str, Sequence[str], Sequence[str], random.Random], str | None]


PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("repetition", lambda reply, context, others, rng: repetition(reply, context)),
    Perturbation("negation", lambda reply, context, others, rng: negation(reply)),
    Perturbation("tense", lambda reply, context, others, rng: tense(reply)),
    Perturbation("subject_object_swap", lambda reply, context, others, rng: subject_object_swap(reply)),
    Perturbation("lexical_contradiction", lambda reply, context, others, rng: lexical_contradiction(reply)),
    Perturbation("interrogative", lambda reply, context, others, rng: interrogative(reply)),
    Perturbation("topic", topic),
)
TYPES = tuple(p.name for p in PERTURBATIONS)


# --------------------------------------------------------------------------------------------------
# The suite and the evaluator
# --------------------------------------------------------------------------------------------------


@dataclass
class AdversarialPair:
    """One line of a suite: a context, its true reply and a perturbed false one."""

    context: list[str]
    true: str
    false: str
    type: str
    dialogue_id: str = ""
    position: int = -1

    def to_json(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "candidates": [{"text": self.true, "label": 1}, {"text": self.false, "label": 0}],
            "type": self.type,
            "dialogue_id": self.dialogue_id,
            "position": self.position,
        }


def _borrowed(pool: Sequence[str], owner: Sequence[int], dialogue: int, rng: random.Random) -> list[str]:
    """Up to 64 utterances of other dialogues, drawn for the ``topic`` rule to borrow its sentences from."""
    return [pool[j] for j in rng.sample(range(len(pool)), min(len(pool), 64)) if owner[j] != dialogue]


def make_adversarial_suite(
    dialogues: Sequence[dict[str, Any]], *, seed: int = 0, max_turns: int | None = None
) -> list[AdversarialPair]:
    """One pair per dialogue and perturbation type where the rule applies to some reply of the dialogue.

    The position is drawn per dialogue (its own RNG: reproducible under ``seed``, independent of file order);
    where a rule does not apply there, the other positions are tried in turn. ``topic`` draws its utterances
    from the other dialogues.
    """
    pool = [u for d in dialogues for u in d["utterances"]]
    owner = [i for i, d in enumerate(dialogues) for _ in d["utterances"]]
    pairs = []
    for index, dialogue in enumerate(dialogues):
        utterances = dialogue["utterances"]
        rng = random.Random(f"{seed}:{dialogue['id']}")
        positions = list(range(1, len(utterances)))
        rng.shuffle(positions)
        others = _borrowed(pool, owner, index, rng)
        for perturbation in PERTURBATIONS:
            for t in positions:
                context = utterances[:t] if max_turns is None else utterances[max(0, t - max_turns) : t]
                false = perturbation.apply(utterances[t], context, others, rng)
                if false is not None:
                    pairs.append(
                        AdversarialPair(list(context), utterances[t], false, perturbation.name, dialogue["id"], t)
                    )
                    break
    return pairs


class GeneratedNegatives(NamedTuple):
    """Perturbed replies as training negatives (:func:`generate_negatives`).

    ``texts``: one pool row per training dialogue (``utterances``, ``num_turns``, ``corpus``), holding that
    dialogue's perturbations; ``lists``: in the mined-negatives layout of :mod:`ko_mrs.negatives`, per context
    the (pool row, position) of its own reply's perturbations, the pool row being ``len(dialogues) + d``.
    """

    texts: Dataset
    lists: Dataset


def generate_negatives(dialogues: Dataset, *, seed: int = 0, per_context: int = 2) -> GeneratedNegatives:
    """Up to ``per_context`` perturbations of each context's true reply, the types in a per-dialogue seeded order.

    Cached by ``datasets`` under a fingerprint of the dialogues and these settings: Kiwi analyses each reply once
    (:func:`morphemes` is cached), which is still the slow part (hundreds of replies a second).
    """
    if per_context < 1:
        raise ValueError(f"per_context must be at least 1, got {per_context}")
    offset = len(dialogues)
    state: dict[str, Any] = {}

    def perturb(turns_batch: list[list[str]], dialogue_ids: list[str], ids: list[int]) -> dict[str, list]:
        if not state:  # every utterance, for the topic rule's borrowed sentences; read on the first batch only
            state["pool"] = [u for turns in dialogues["utterances"] for u in turns]
            state["owner"] = np.repeat(np.arange(offset), dialogues["num_turns"][:])
        pool, owner = state["pool"], state["owner"]
        out: dict[str, list] = {"utterances": [], "hard_dialogue": [], "hard_position": []}
        for d, turns, dialogue_id in zip(ids, turns_batch, dialogue_ids, strict=True):
            rng = random.Random(f"{seed}:{dialogue_id}")
            others = _borrowed(pool, owner, d, rng)
            texts: list[str] = []
            rows, positions = [], []
            for t in range(1, len(turns)):
                order = list(PERTURBATIONS)
                rng.shuffle(order)
                made: list[int] = []
                for perturbation in order:
                    false = perturbation.apply(turns[t], turns[:t], others, rng)
                    if false is not None and normalise(false) != normalise(turns[t]):
                        made.append(len(texts))
                        texts.append(false)
                        if len(made) == per_context:
                            break
                rows.append([offset + d] * len(made))
                positions.append(made)
            out["utterances"].append(texts)
            out["hard_dialogue"].append(rows)
            out["hard_position"].append(positions)
        return out

    features = Features({"utterances": List(Value("string")), **MINED_FEATURES})
    made = dialogues.map(
        perturb,
        batched=True,
        with_indices=True,
        input_columns=["utterances", "id"],
        remove_columns=dialogues.column_names,
        features=features,
        new_fingerprint=Hasher.hash([dialogues._fingerprint, seed, per_context, TYPES, "adversarial-v1"]),
        desc="Generating adversarial negatives",
    )
    texts = made.select_columns(["utterances"])
    texts = texts.add_column("num_turns", [len(u) for u in texts["utterances"]])
    texts = texts.add_column("corpus", ["adversarial"] * len(texts))
    return GeneratedNegatives(texts, made.select_columns(["hard_dialogue", "hard_position"]))


class AdversarialFormatError(UsageError, ValueError):
    """A suite line that is not a context with one true and at least one false candidate."""


def read_adversarial_files(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The records of suite files; a record without ``type`` takes its file's name (``negation.jsonl``)."""
    records = []
    for path in map(Path, paths):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise AdversarialFormatError(f"{path}: not UTF-8 ({error.reason})") from error
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise AdversarialFormatError(f"{where}: not JSON ({error.msg})") from error
            if not isinstance(record, dict):
                raise AdversarialFormatError(f"{where}: a line must be a JSON object")
            context = record.get("context")
            if not isinstance(context, list) or not context or not all(isinstance(t, str) for t in context):
                raise AdversarialFormatError(f"{where}: field 'context' must be a non-empty list of strings")
            candidates = record.get("candidates")
            if not isinstance(candidates, list) or not all(
                isinstance(c, dict) and isinstance(c.get("text"), str) and c.get("label") in (0, 1)
                and not isinstance(c.get("label"), bool)
                for c in candidates
            ):  # fmt: skip
                raise AdversarialFormatError(
                    f'{where}: field \'candidates\' must be a list of {{"text": str, "label": 0 or 1}}'
                )
            labels = [c["label"] for c in candidates]
            if labels.count(1) != 1 or labels.count(0) < 1:
                raise AdversarialFormatError(f"{where}: field 'candidates' needs exactly one label 1 and a label 0")
            kind = record.get("type", path.name.split(".")[0])
            if not isinstance(kind, str) or not kind:
                raise AdversarialFormatError(f"{where}: field 'type' must be a non-empty string")
            records.append({"context": context, "candidates": candidates, "type": kind})
    return records


@dataclass
class TypeAccuracy:
    """Pairwise accuracy of one perturbation type: the true reply scored strictly above the false one."""

    pairs: int = 0
    correct: int = 0
    bm25_correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.pairs if self.pairs else float("nan")

    @property
    def bm25_accuracy(self) -> float:
        return self.bm25_correct / self.pairs if self.pairs else float("nan")


@dataclass
class AdversarialReport:
    """Per-type and overall accuracy (overall: every pair counts once, whatever its type)."""

    types: dict[str, TypeAccuracy] = field(default_factory=dict)

    @property
    def overall(self) -> TypeAccuracy:
        total = TypeAccuracy()
        for entry in self.types.values():
            total.pairs += entry.pairs
            total.correct += entry.correct
            total.bm25_correct += entry.bm25_correct
        return total

    def metrics(self, prefix: str = "adversarial_") -> dict[str, float]:
        """``{prefix}{type}_accuracy`` and ``{prefix}{type}_bm25_accuracy`` per type, then the overall pair."""
        out: dict[str, float] = {}
        for name, entry in sorted(self.types.items()):
            out[f"{prefix}{name}_accuracy"] = entry.accuracy
            out[f"{prefix}{name}_bm25_accuracy"] = entry.bm25_accuracy
        out[f"{prefix}accuracy"] = self.overall.accuracy
        out[f"{prefix}bm25_accuracy"] = self.overall.bm25_accuracy
        return out

    def table(self) -> str:
        lines = ["| type | pairs | model | BM25 |", "|---|---:|---:|---:|"]
        for name, entry in [*sorted(self.types.items()), ("overall", self.overall)]:
            lines.append(f"| {name} | {entry.pairs} | {entry.accuracy:.3f} | {entry.bm25_accuracy:.3f} |")
        return "\n".join(lines)


def evaluate_adversarial(
    records: Iterable[dict[str, Any]], score: Callable[[list[str], list[str]], Sequence[float]]
) -> AdversarialReport:
    """Score each record's candidates with ``score(context, texts)``; each false candidate is one pair.

    A pair is right when the true reply scores strictly higher: a tie is wrong, so a constant scorer gets 0.
    """
    report = AdversarialReport()
    for record in records:
        texts = [c["text"] for c in record["candidates"]]
        labels = [c["label"] for c in record["candidates"]]
        entry = report.types.setdefault(record["type"], TypeAccuracy())
        for scores, attr in (
            (score(record["context"], texts), "correct"),
            (bm25_scores(record["context"], texts), "bm25_correct"),
        ):
            true = scores[labels.index(1)]
            wins = sum(1 for s, label in zip(scores, labels, strict=True) if label == 0 and true > s)
            setattr(entry, attr, getattr(entry, attr) + wins)
        entry.pairs += labels.count(0)
    return report


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrs-eval", description="Adversarial suites: make them, score a model on them."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="write a suite from held-out dialogues (JSONL)")
    make.add_argument("--dialogues", nargs="+", required=True)
    make.add_argument("--out", required=True, help="the suite file to write (JSONL)")
    make.add_argument("--seed", type=int, default=0)
    evaluate = commands.add_parser("adversarial", help="pairwise accuracy per type, beside BM25")
    evaluate.add_argument("files", nargs="+")
    evaluate.add_argument("--model", required=True, help="a fine-tuned model folder or Hub id")
    evaluate.add_argument("--output", help="also write the metrics as JSON here")
    return parser


def run(argv: list[str] | None = None) -> AdversarialReport | int:
    from ko_mrs.dialogue_data import read_dialogues, write_jsonl

    args = build_parser().parse_args(argv)
    if args.command == "make":
        out = check_output_file(args.out, "--out")
        dialogues, _ = read_dialogues(args.dialogues)
        pairs = make_adversarial_suite(list(dialogues), seed=args.seed)
        write_jsonl((p.to_json() for p in pairs), out)
        counts = Counter(p.type for p in pairs)
        print(
            f"{len(pairs)} pairs from {len(dialogues)} dialogues -> {out}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )
        return len(pairs)
    output = check_output_file(args.output, "--output") if args.output else None
    records = read_adversarial_files(args.files)
    from ko_mrs.ranking import ResponseSelector

    selector = ResponseSelector.from_pretrained(args.model)
    report = evaluate_adversarial(records, selector.score)
    print(report.table())
    if output is not None:
        write_jsonl([report.metrics()], output)
    return report


def main(argv: list[str] | None = None) -> int:
    return cli_main("mrs-eval", run, argv)


if __name__ == "__main__":
    sys.exit(main())
