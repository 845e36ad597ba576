"""Training and ranking give a model the same inputs, token types included, for BERT and XLM-R tokenizers."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerBase, XLMRobertaTokenizerFast

from data_collators import PostTrainingCollator, ResponseSelectionCollator, uses_token_types
from ko_mrs.preprocessing import add_eot_token, groups_to_pairs
from ko_mrs.ranking import ResponseSelector
from ko_mrs.tiny_model import train_wordpiece

TEXTS = [
    "차를 새로 사려고 해요.",
    "어떤 차종을 보세요?",
    "가족용 SUV요.",
    "녹차 한 잔 주세요.",
    "내일 비가 온대요.",
] * 4
GROUP = {
    "group_id": "g",
    "context": ["차를 새로 사려고 해요.", "어떤 차종을 보세요?"],
    "candidates": ["가족용 SUV요.", "녹차 한 잔 주세요.", "내일 비가 온대요."],
    "labels": [1, 0, 0],
}


def bert_tokenizer() -> PreTrainedTokenizerBase:
    return train_wordpiece(iter(TEXTS), vocab_size=200, min_frequency=1)


def xlmr_tokenizer() -> PreTrainedTokenizerBase:
    """A real XLMRobertaTokenizerFast (a Unigram model), as multilingual-e5 uses: no token_type_ids."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.train_from_iterator(
        TEXTS, trainers.UnigramTrainer(vocab_size=120, special_tokens=specials, unk_token="<unk>")
    )
    tokenizer = XLMRobertaTokenizerFast(tokenizer_object=unigram)
    add_eot_token(tokenizer)
    return tokenizer


class Recorder(BertForSequenceClassification):
    """Keeps the inputs of every forward pass."""

    def forward(self, **inputs):  # type: ignore[override]
        self.seen.append({key: value.clone() for key, value in inputs.items()})
        return super().forward(**inputs)


def recorder(tokenizer: PreTrainedTokenizerBase) -> Recorder:
    types = 2 if uses_token_types(tokenizer) else 1  # XLM-R-style encoders have a single token type
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, type_vocab_size=types, num_labels=2, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = Recorder(config).eval()
    model.seen = []
    return model


def unpadded(batch: dict[str, torch.Tensor]) -> list[dict[str, list[int]]]:
    lengths = batch["attention_mask"].sum(-1).tolist()
    keys = [key for key in ("input_ids", "token_type_ids") if key in batch]
    return [{key: batch[key][i, :n].tolist() for key in keys} for i, n in enumerate(lengths)]


@pytest.mark.parametrize("make_tokenizer", [bert_tokenizer, xlmr_tokenizer], ids=["bert", "xlm-r"])
def test_collator_and_selector_send_the_same_inputs(make_tokenizer) -> None:
    tokenizer = make_tokenizer()
    pairs, pool, _ = groups_to_pairs([GROUP], tokenizer)
    batch = ResponseSelectionCollator(tokenizer, pool, max_length=32)(list(pairs))
    model = recorder(tokenizer)
    ResponseSelector(model, tokenizer, max_length=32).score(GROUP["context"], GROUP["candidates"])
    (seen,) = model.seen
    # the selector batches longest first; compare pair by pair, keyed by the ids
    trained = sorted(map(str, unpadded(batch)))
    ranked = sorted(map(str, unpadded(seen)))
    assert trained == ranked
    if uses_token_types(tokenizer):
        assert "token_type_ids" in batch and batch["token_type_ids"].max() == 1  # the reply is segment 1
    else:
        assert "token_type_ids" not in batch and "token_type_ids" not in seen


def test_xlmr_tokenizer_gets_no_token_types_in_post_training_either() -> None:
    from datasets import Dataset

    from ko_mrs.preprocessing import DialoguePool, build_windows, tokenize_dialogues

    tokenizer = xlmr_tokenizer()
    dialogues = Dataset.from_dict({"utterances": [TEXTS[:4], TEXTS[1:5]], "num_turns": [4, 4], "corpus": ["c", "c"]})
    tokenized = tokenize_dialogues(dialogues, tokenizer)
    windows = build_windows(tokenized)
    batch = PostTrainingCollator(tokenizer, DialoguePool(tokenized), max_length=32)(list(windows))
    assert "token_type_ids" not in batch
    assert not uses_token_types(xlmr_tokenizer()) and uses_token_types(bert_tokenizer())
