"""Who said each context turn and how far it is from the reply: the per-utterance features a selector may see.

Speakers are mapped *relative to the candidate reply* (SA-BERT, Gu et al. 2020): names carry nothing, but whether
a turn was said by the one who is about to reply, or by whom else, does. The reply's speaker is always 0
(``[SPK0]``); the other speakers take 1, 2, ... in order of their last turn, most recent first, so ``[SPK1]`` is
whoever spoke last among the others. With more speakers than ``max_speakers`` ids, the last id is "other": it is
shared by every speaker past the first ``max_speakers - 1`` (the reply's and the most recent others).

    context speakers  A  C  B  A  B,  reply by A   ->   [SPK0] [SPK2] [SPK1] [SPK0] [SPK1]

Without speakers (the TSV benchmarks, JSONL without the field) two parties alternate: the reply's speaker said
every second turn back from the reply, the other party the turns in between.

Two encodings, each a switch (:class:`UtteranceFeatures`), both for speakers and for turn distance:

- ``tokens``: ``[SPK0]``.. / ``[T1]``.. tokens added to the tokenizer and put before each utterance; the model
  stays a plain ``BertForSequenceClassification``;
- ``embeddings``: an embedding per id added to the word embeddings (``modeling_mrs.UtteranceFeatureEmbeddings``),
  zero-initialised so a pretrained encoder starts exactly where it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from transformers import PreTrainedTokenizerBase

from ko_mrs.cli_errors import UsageError

ENCODINGS = ("none", "tokens", "embeddings")
DEFAULT_MAX_SPEAKERS = 4
DEFAULT_MAX_TURN_DISTANCE = 10
# How the settings are recorded in a model's config, so ranking rebuilds pairs the way training did.
CONFIG_PREFIX = "mrs_"


def speaker_token(index: int) -> str:
    return f"[SPK{index}]"


def distance_token(distance: int) -> str:
    return f"[T{distance}]"


def relative_speakers(
    context: Sequence[str], reply_speaker: str, max_speakers: int = DEFAULT_MAX_SPEAKERS
) -> list[int]:
    """Relative id of each context turn's speaker: 0 the reply's speaker, then others by their last turn.

    ``["A", "B", "C", "B"]`` with the reply by ``"A"`` gives ``[0, 1, 2, 1]``: B spoke last (1), then C (2).
    Ids at or past ``max_speakers - 1`` fold into ``max_speakers - 1`` ("other").
    """
    if max_speakers < 2:
        raise ValueError(f"max_speakers must be at least 2 (the reply's speaker and one other), got {max_speakers}")
    order = {reply_speaker: 0}
    for speaker in reversed(context):
        order.setdefault(speaker, len(order))
    return [min(order[speaker], max_speakers - 1) for speaker in context]


def alternating_speakers(num_context: int) -> list[int]:
    """The two-party default: the turn just before the reply is the other party's (1), the one before it the
    reply speaker's own (0), and so on back."""
    return [(num_context - i) % 2 for i in range(num_context)]


def context_speakers(speakers: Sequence[str], start: int, position: int, max_speakers: int) -> list[int]:
    """Relative ids of turns ``start..position-1`` of a dialogue for the reply at ``position``.

    ``speakers`` is the dialogue's list; an empty one (no speakers recorded) means two-party alternation.
    """
    if not speakers:
        return alternating_speakers(position - start)
    return relative_speakers(speakers[start:position], speakers[position], max_speakers)


def turn_distances(num_context: int, max_distance: int = DEFAULT_MAX_TURN_DISTANCE) -> list[int]:
    """How many turns back from the reply each context turn is (1: the last one), capped at ``max_distance``."""
    return [min(num_context - i, max_distance) for i in range(num_context)]


@dataclass(frozen=True)
class UtteranceFeatures:
    """Which per-utterance features a selector sees and how; recorded in the model config as ``mrs_*``."""

    speaker_encoding: str = "none"
    turn_distance_encoding: str = "none"
    max_speakers: int = DEFAULT_MAX_SPEAKERS
    max_turn_distance: int = DEFAULT_MAX_TURN_DISTANCE

    def __post_init__(self) -> None:
        for name in ("speaker_encoding", "turn_distance_encoding"):
            if getattr(self, name) not in ENCODINGS:
                raise ValueError(f"{name} must be one of {', '.join(ENCODINGS)}, got {getattr(self, name)!r}")
        if self.max_speakers < 2:
            raise ValueError(f"max_speakers must be at least 2, got {self.max_speakers}")
        if self.max_turn_distance < 1:
            raise ValueError(f"max_turn_distance must be at least 1, got {self.max_turn_distance}")

    @property
    def uses_speakers(self) -> bool:
        return self.speaker_encoding != "none"

    @property
    def any(self) -> bool:
        return self.uses_speakers or self.turn_distance_encoding != "none"

    @property
    def embedding_inputs(self) -> tuple[str, ...]:
        """The extra per-token model inputs (``speaker_ids``, ``turn_ids``) that the embedding encodings need."""
        names = []
        if self.speaker_encoding == "embeddings":
            names.append("speaker_ids")
        if self.turn_distance_encoding == "embeddings":
            names.append("turn_ids")
        return tuple(names)

    def tokens(self) -> list[str]:
        """The marker tokens the ``tokens`` encodings add to the tokenizer."""
        out = []
        if self.speaker_encoding == "tokens":
            out += [speaker_token(i) for i in range(self.max_speakers)]
        if self.turn_distance_encoding == "tokens":
            out += [distance_token(d) for d in range(1, self.max_turn_distance + 1)]
        return out

    def add_tokens(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Add the marker tokens as special tokens (never split, never masked by MLM)."""
        missing = [t for t in self.tokens() if t not in tokenizer.all_special_tokens]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)

    def to_config(self, config: Any) -> None:
        for key, value in asdict(self).items():
            setattr(config, CONFIG_PREFIX + key, value)

    @classmethod
    def from_config(cls, config: Any) -> UtteranceFeatures:
        """The settings a model was trained with; none for a model trained before they existed."""
        values = {key: getattr(config, CONFIG_PREFIX + key, None) for key in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in values.items() if value is not None})


@dataclass
class UtteranceFeatureArguments:
    """The run scripts' switches; each left unset takes the checkpoint's value (a post-trained model's), else off."""

    speaker_encoding: str | None = field(
        default=None,
        metadata={
            "help": "Speakers relative to the reply: tokens ([SPK0].. before each utterance; a plain "
            "BertForSequenceClassification), embeddings (SA-BERT style, zero-initialised), or none.",
            "choices": ENCODINGS,
        },
    )
    turn_distance_encoding: str | None = field(
        default=None,
        metadata={
            "help": "Turns back from the reply, per utterance: tokens ([T1]..), embeddings or none.",
            "choices": ENCODINGS,
        },
    )
    max_speakers: int | None = field(
        default=None,
        metadata={"help": f"Speaker ids; the last is shared by the rest (default {DEFAULT_MAX_SPEAKERS})."},
    )
    max_turn_distance: int | None = field(
        default=None, metadata={"help": f"Distances past this share its id (default {DEFAULT_MAX_TURN_DISTANCE})."}
    )

    def resolve(self, config: Any) -> UtteranceFeatures:
        """These settings over those recorded in ``config`` (the checkpoint's), over the defaults."""
        recorded = asdict(UtteranceFeatures.from_config(config))
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        try:
            return UtteranceFeatures(**(recorded | given))
        except ValueError as err:
            raise UsageError(str(err)) from None
