"""A bi-encoder for response retrieval: a context tower and a reply tower, mean pooling, dot or cosine score.

A cross-encoder reads each (context, reply) pair together, so its cost grows with the number of candidates; a
bi-encoder embeds replies once, ahead of time, and a context in one forward pass, so a pool of a million replies is
one inner product per query (:mod:`ko_mrs.retrieval`). It is the first stage of :class:`ko_mrs.responder.Responder`,
trained by :mod:`ko_mrs.distillation` from a fine-tuned cross-encoder's scores.

Inputs are laid out like the cross-encoder's halves: a context is ``[CLS] u1 [EOT] u2 [SEP]``, cut from the left so
the latest turns survive; a reply is ``[CLS] r [SEP]``, cut from the right. The towers share their weights by
default (one BERT, half the parameters; Karpukhin et al. 2020 found separate towers no better for QA retrieval),
and either loads from any BERT checkpoint: a post-trained or fine-tuned one (``bert.*`` weights) or a plain one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from transformers import BertConfig, BertModel, BertPreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import ModelOutput

from data_collators import SpecialIds, selection_pairs, special_ids
from ko_mrs.preprocessing import DialoguePool
from modeling_mrs import mean_pool

__all__ = [
    "SIMILARITIES",
    "BertBiEncoder",
    "BiEncoderCollator",
    "BiEncoderOutput",
    "TextEncoder",
    "context_input",
    "reply_input",
]

SIMILARITIES = ("cosine", "dot")
DEFAULT_CONTEXT_LENGTH = 128
DEFAULT_REPLY_LENGTH = 64
PAD_TO_MULTIPLE_OF = 8
HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "trust_remote_code")


@dataclass
class BiEncoderOutput(ModelOutput):
    """``scores[i, j]``: context ``i`` against reply ``j`` (every reply of the batch, for in-batch negatives)."""

    context_embeddings: torch.Tensor | None = None
    reply_embeddings: torch.Tensor | None = None
    scores: torch.Tensor | None = None


class BertBiEncoder(BertPreTrainedModel):
    """Two BERT towers (one when ``config.bi_encoder_shared_towers``) whose mean-pooled outputs are compared.

    ``config.bi_encoder_similarity``: ``cosine`` normalises the embeddings (the score is their cosine), ``dot``
    keeps their length. Either way the score is an inner product, which is what the index searches.
    The context tower's parameters are ``bert.*``, so any BERT checkpoint's encoder loads into it; a separate
    reply tower (``reply_bert.*``) that the checkpoint lacks starts as a copy of it.
    """

    config_class = BertConfig
    base_model_prefix = "bert"
    _keys_to_ignore_on_load_unexpected = [r"^bert\.pooler\.", r"^cls\.", r"^urc_classifier\.", r"^classifier\."]
    # a reply tower that the checkpoint lacks is copied from the context tower (see from_pretrained), not missing
    _keys_to_ignore_on_load_missing = [r"^reply_bert\."]

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        config.bi_encoder_shared_towers = getattr(config, "bi_encoder_shared_towers", True)
        config.bi_encoder_similarity = getattr(config, "bi_encoder_similarity", "cosine")
        if config.bi_encoder_similarity not in SIMILARITIES:
            raise ValueError(f"bi_encoder_similarity must be one of {SIMILARITIES}, got {config.bi_encoder_similarity}")
        self.bert = BertModel(config, add_pooling_layer=False)
        self.reply_bert = None if config.bi_encoder_shared_towers else BertModel(config, add_pooling_layer=False)
        self.post_init()

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str,
        *args: Any,
        shared_towers: bool | None = None,
        similarity: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Load any BERT checkpoint; ``shared_towers`` / ``similarity`` override what its config says.

        A reply tower missing from the checkpoint (a plain BERT loaded with ``shared_towers=False``) is copied from
        the context tower, so both towers start from the same pre-trained weights rather than a random one.
        """
        config = kwargs.pop("config", None)
        if config is None:
            hub = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
            config = cls.config_class.from_pretrained(model_name_or_path, **hub)
        # a checkpoint holds a reply tower only when it was saved as a bi-encoder with separate towers
        has_reply_tower = getattr(config, "bi_encoder_shared_towers", True) is False
        if shared_towers is not None:
            config.bi_encoder_shared_towers = shared_towers
        if similarity is not None:
            config.bi_encoder_similarity = similarity
        if hasattr(config, "auto_map"):  # a cross-encoder's auto_map names its own class, not this one
            del config.auto_map
        loaded = super().from_pretrained(model_name_or_path, *args, config=config, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if model.reply_bert is not None and not has_reply_tower:
            model.reply_bert.load_state_dict(model.bert.state_dict())
        model.config.architectures = [cls.__name__]
        return loaded

    @property
    def reply_encoder(self) -> BertModel:
        return self.bert if self.reply_bert is None else self.reply_bert

    def towers(self) -> list[BertModel]:
        return [self.bert] if self.reply_bert is None else [self.bert, self.reply_bert]

    def resize_token_embeddings(self, new_num_tokens: int, pad_to_multiple_of: int | None = None, **kwargs):
        """Both towers: a token added to the tokenizer (``[EOT]``) needs a row in each."""
        embeddings = [t.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, **kwargs) for t in self.towers()]
        self.config.vocab_size = embeddings[0].num_embeddings
        return embeddings[0]

    def _pool(self, tower: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = tower(input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return F.normalize(pooled, dim=-1) if self.config.bi_encoder_similarity == "cosine" else pooled

    def encode_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._pool(self.bert, input_ids, attention_mask)

    def encode_reply(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._pool(self.reply_encoder, input_ids, attention_mask)

    def forward(
        self,
        context_input_ids: torch.Tensor | None = None,
        context_attention_mask: torch.Tensor | None = None,
        reply_input_ids: torch.Tensor | None = None,
        reply_attention_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> BiEncoderOutput | tuple[torch.Tensor, ...]:
        """Embed whichever side is given; with both, ``scores`` compares every context with every reply."""
        contexts = None if context_input_ids is None else self.encode_context(context_input_ids, context_attention_mask)
        replies = None if reply_input_ids is None else self.encode_reply(reply_input_ids, reply_attention_mask)
        scores = contexts @ replies.T if contexts is not None and replies is not None else None
        output = BiEncoderOutput(context_embeddings=contexts, reply_embeddings=replies, scores=scores)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if return_dict else output.to_tuple()


def context_input(turns: Sequence[Sequence[int]], special: SpecialIds, max_length: int) -> list[int]:
    """``[CLS] u1 [EOT] u2 [SEP]`` with the oldest tokens cut first (a cut just after an ``[EOT]`` drops it)."""
    flat: list[int] = []
    for i, utterance in enumerate(turns):
        if i:
            flat.append(special.eot)
        flat.extend(utterance)
    kept = flat[max(0, len(flat) - (max_length - 2)) :]
    if len(kept) < len(flat) and kept and kept[0] == special.eot:
        kept = kept[1:]
    return [special.cls, *kept, special.sep]


def reply_input(reply: Sequence[int], special: SpecialIds, max_length: int) -> list[int]:
    """``[CLS] r [SEP]``, cut from the right."""
    return [special.cls, *reply[: max_length - 2], special.sep]


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask, right-padded to a multiple of 8."""
    width = -(-max(len(s) for s in sequences) // PAD_TO_MULTIPLE_OF) * PAD_TO_MULTIPLE_OF
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


@dataclass
class BiEncoderCollator:
    """Batches of pair rows (evaluation groups) or listwise rows (training: a context and its candidate list).

    Each context is encoded once; its candidates follow in row order, so a listwise batch of ``B`` rows with ``k``
    candidates each holds ``B`` contexts and ``B * k`` replies, the positive of context ``i`` at ``i * k``.
    A pair row's context is encoded once per pair (evaluation only). ``teacher_scores``, when a row has them,
    travel along as a ``[B, k]`` tensor.
    """

    tokenizer: PreTrainedTokenizerBase
    pool: DialoguePool
    context_length: int = DEFAULT_CONTEXT_LENGTH
    reply_length: int = DEFAULT_REPLY_LENGTH
    _special: SpecialIds = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._special = special_ids(self.tokenizer)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        utterances = self.pool.fetch(
            [int(f["dialogue"]) for f in features]
            + [int(d) for f in features for d in np.atleast_1d(f["candidate_dialogue"])]
        )
        contexts, replies, labels, group_ids, candidate_indices = [], [], [], [], []
        for feature in features:
            pairs = selection_pairs(feature)
            row = pairs[0].row
            contexts.append(
                context_input(utterances[row.dialogue][row.start : row.position], self._special, self.context_length)
            )
            for pair in pairs:
                reply = utterances[pair.row.candidate_dialogue][pair.row.candidate_position]
                replies.append(reply_input(reply, self._special, self.reply_length))
                labels.append(pair.label)
                group_ids.append(pair.group_id)
                candidate_indices.append(pair.candidate_index)
        context_ids, context_mask = pad(contexts, self._special.pad)
        reply_ids, reply_mask = pad(replies, self._special.pad)
        batch = {
            "context_input_ids": context_ids,
            "context_attention_mask": context_mask,
            "reply_input_ids": reply_ids,
            "reply_attention_mask": reply_mask,
            "labels": torch.tensor(labels),
            "group_id": torch.tensor(group_ids),
            "candidate_index": torch.tensor(candidate_indices),
        }
        if "teacher_scores" in features[0]:
            batch["teacher_scores"] = torch.tensor([f["teacher_scores"] for f in features], dtype=torch.float32)
        return batch


class TextEncoder:
    """Texts to embeddings with a :class:`BertBiEncoder`: contexts (lists of turns) or replies, in batches.

    Utterances are tokenised without special tokens and laid out by :func:`context_input` / :func:`reply_input`,
    as in training. Embeddings come back as float32 numpy arrays, in input order.
    """

    def __init__(
        self,
        model: BertBiEncoder,
        tokenizer: PreTrainedTokenizerBase,
        *,
        context_length: int | None = None,
        reply_length: int | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.special = special_ids(tokenizer)
        self.context_length = context_length or getattr(model.config, "mrs_max_length", None) or DEFAULT_CONTEXT_LENGTH
        self.reply_length = reply_length or getattr(model.config, "mrs_reply_length", None) or DEFAULT_REPLY_LENGTH
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"]

    @torch.inference_mode()
    def _embed(self, sequences: Sequence[Sequence[int]], encode) -> np.ndarray:
        device = self.model.device
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))  # little padding per batch
        out = np.zeros((len(sequences), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            ids, mask = pad([sequences[i] for i in chunk], self.special.pad)
            out[chunk] = encode(ids.to(device), mask.to(device)).float().cpu().numpy()
        return out

    def embed_contexts(self, contexts: Sequence[Sequence[str]]) -> np.ndarray:
        flat = self._ids([turn for context in contexts for turn in context])
        sequences, start = [], 0
        for context in contexts:
            sequences.append(context_input(flat[start : start + len(context)], self.special, self.context_length))
            start += len(context)
        return self._embed(sequences, self.model.encode_context)

    def embed_replies(self, replies: Sequence[str]) -> np.ndarray:
        sequences = [reply_input(ids, self.special, self.reply_length) for ids in self._ids(replies)]
        return self._embed(sequences, self.model.encode_reply)

    def embed_reply_stream(self, replies: Iterable[str], chunk_size: int = 4096) -> Iterator[np.ndarray]:
        """Embeddings of a stream of replies, ``chunk_size`` at a time: a pool never has to fit in memory."""
        chunk: list[str] = []
        for reply in replies:
            chunk.append(reply)
            if len(chunk) == chunk_size:
                yield self.embed_replies(chunk)
                chunk = []
        if chunk:
            yield self.embed_replies(chunk)


def score_rows(model: BertBiEncoder, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The score of each (context, candidate) of a collated batch: candidates follow their context in order."""
    contexts = model.encode_context(batch["context_input_ids"], batch["context_attention_mask"])
    replies = model.encode_reply(batch["reply_input_ids"], batch["reply_attention_mask"])
    per_context = len(replies) // len(contexts)
    return (contexts.repeat_interleave(per_context, dim=0) * replies).sum(-1)
