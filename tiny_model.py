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

import torch
import yaml
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForPreTraining, BertTokenizerFast

from dialogue_data import read_dialogues
from preprocessing import EOT_TOKEN

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", EOT_TOKEN]


def train_wordpiece(texts: Iterator[str], *, vocab_size: int, min_frequency: int = 2, lowercase: bool = False):
    """A BERT-style WordPiece tokenizer; accents are kept, since stripping them breaks Hangul."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=False, clean_text=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=lowercase)
    fast.add_special_tokens({"additional_special_tokens": [EOT_TOKEN]})
    return fast


def build_tiny_model(corpus_files: list[str | Path], config_path: str | Path, out_dir: str | Path) -> Path:
    """Train the tokenizer on ``corpus_files`` and save it with a random ``BertForPreTraining``."""
    settings = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    dialogues, _ = read_dialogues(corpus_files, skip_short=True)
    texts = (text for batch in dialogues.iter(batch_size=1000) for turns in batch["utterances"] for text in turns)
    tokenizer = train_wordpiece(texts, **settings["tokenizer"])
    torch.manual_seed(settings.get("seed", 0))
    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **settings["model"])
    model = BertForPreTraining(config)
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
