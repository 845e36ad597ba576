"""Offline model bootstrap: a WordPiece tokenizer trained on a corpus plus a small random BERT.

There is no Hub on CI machines or in the tests, so the demo and the tests start from a checkpoint
built here. It is saved like klue/bert-base (a ``BertForPreTraining`` with its tokenizer), so that
every later stage loads it through the same ``from_pretrained`` code path as the real model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import yaml
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForPreTraining, BertTokenizerFast

from ko_mrs.dialogue_data import read_dialogues
from ko_mrs.preprocessing import EOT_TOKEN

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", EOT_TOKEN]


def train_wordpiece(texts: Iterator[str], *, vocab_size: int, min_frequency: int = 2, lowercase: bool = False):
    """A BERT-style WordPiece tokenizer; accents are kept, since stripping them breaks Hangul.

    Deterministic: `tokenizers`' trainer numbers the ``##`` continuation pieces in hash-map order, which then breaks
    ties between equally frequent merges differently from run to run (huggingface/tokenizers#1794), so the same
    corpus gave a different vocabulary, model and demo numbers each time. Here every ``##`` piece of the corpus's
    alphabet is registered up front, in sorted order, and the trained vocabulary is rebuilt without them as
    special tokens.
    """
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=False, clean_text=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    texts = list(texts)
    alphabet = sorted(
        {
            char
            for text in texts
            for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
            for char in word[1:]
        }
    )
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[*SPECIAL_TOKENS, *(f"##{char}" for char in alphabet)],
    )
    draft = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    draft.normalizer, draft.pre_tokenizer = normalizer, pre_tokenizer
    draft.train_from_iterator(texts, trainer=trainer)
    tokenizer = Tokenizer(models.WordPiece(vocab=draft.get_vocab(), unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=lowercase)
    fast.add_special_tokens({"additional_special_tokens": [EOT_TOKEN]})
    return fast


def lsa_embeddings(documents: list[list[int]], vocab_size: int, dim: int, std: float) -> torch.Tensor:
    """Word vectors from a truncated SVD of the document-token TF-IDF matrix (latent semantic analysis).

    Tokens of the same topic get similar vectors, which a BERT trained from scratch otherwise has to
    discover through a long loss plateau before it can compare a reply with its context. Rows are scaled
    to BERT's initialisation ``std``; tokens in no document keep a zero vector (the caller adds noise).
    """
    counts = np.zeros((len(documents), vocab_size), dtype=np.float64)
    for row, ids in enumerate(documents):
        np.add.at(counts[row], ids, 1.0)
    idf = np.log((1 + len(documents)) / (1 + (counts > 0).sum(axis=0))) + 1
    tfidf = np.log1p(counts) * idf
    tfidf /= np.linalg.norm(tfidf, axis=1, keepdims=True).clip(min=1e-12)
    _, singular, vt = np.linalg.svd(tfidf, full_matrices=False)
    vectors = vt[:dim].T * singular[:dim]
    vectors = np.pad(vectors, ((0, 0), (0, dim - vectors.shape[1])))
    vectors *= std / max(vectors[vectors != 0].std(), 1e-12)
    return torch.from_numpy(vectors).float()


def build_tiny_model(corpus_files: list[str | Path], config_path: str | Path, out_dir: str | Path) -> Path:
    """Train the tokenizer on ``corpus_files`` and save it with a random ``BertForPreTraining``.

    With ``embedding_init: lsa`` in the config, the word embeddings start from :func:`lsa_embeddings` of
    the corpus's dialogues (plus BERT's random initialisation), everything else random.
    """
    settings = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    dialogues, _ = read_dialogues(corpus_files, skip_short=True)
    texts = (text for batch in dialogues.iter(batch_size=1000) for turns in batch["utterances"] for text in turns)
    tokenizer = train_wordpiece(texts, **settings["tokenizer"])
    torch.manual_seed(settings.get("seed", 0))
    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **settings["model"])
    model = BertForPreTraining(config)
    init = settings.get("embedding_init", "random")
    if init == "lsa":
        documents = [
            tokenizer(" ".join(turns), add_special_tokens=False)["input_ids"]
            for batch in dialogues.iter(batch_size=1000)
            for turns in batch["utterances"]
        ]
        embeddings = model.bert.embeddings.word_embeddings.weight
        with torch.no_grad():
            embeddings += lsa_embeddings(documents, embeddings.shape[0], embeddings.shape[1], config.initializer_range)
    elif init != "random":
        raise ValueError(f"{config_path}: embedding_init must be 'random' or 'lsa', got {init!r}")
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="dialogue files to train the tokenizer on")
    parser.add_argument("--config", default="configs/tiny-demo.yaml")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = build_tiny_model(args.files, args.config, args.out)
    print(f"saved a tiny BERT and its tokenizer to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
