"""Head warm-up: fresh heads train alone with exactly the encoder frozen, then the encoder is released."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertModel

import run_post_training
from ko_mrs.head_warmup import is_encoder_parameter, resolve_warmup_steps, warmup_then_linear_decay
from modeling_mrs import prepare_model_for_post_training


def train(setup: dict[str, Path], out: Path, *extra: str) -> dict[str, float]:
    return run_post_training.run(
        [
            "--model_name_or_path", str(setup["model"]),
            "--train_files", str(setup["train"]),
            "--output_dir", str(out),
            "--do_train",
            "--max_seq_length", "64",
            "--per_device_train_batch_size", "8",
            "--learning_rate", "1e-3",
            "--report_to", "none",
            "--disable_tqdm", "true",
            "--save_strategy", "no",
            "--seed", "7",
            *extra,
        ]
    )  # fmt: skip


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, value in after.items() if name in before and not torch.equal(before[name], value)}


def test_warm_up_freezes_exactly_the_encoder_then_releases_it(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    start = load_file(tiny_setup["model"] / "model.safetensors")
    train(tiny_setup, tmp_path / "warm", "--max_steps", "3", "--head_warmup_steps", "3")
    warm = load_file(tmp_path / "warm" / "model.safetensors")
    moved = changed(start, warm)
    encoder = {name for name in start if is_encoder_parameter(name)}
    # every encoder tensor untouched (the [EOT] row was appended, so compare the original rows)
    word = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(warm[word][: start[word].shape[0]], start[word])
    assert not (moved & encoder)
    # the heads did train: the MLM transform, the pooler, and the fresh URC head exists
    assert {"cls.predictions.transform.dense.weight", "bert.pooler.dense.weight"} <= moved
    assert "urc_classifier.out_proj.weight" in warm

    train(tiny_setup, tmp_path / "released", "--max_steps", "6", "--head_warmup_steps", "3")
    released = load_file(tmp_path / "released" / "model.safetensors")
    assert encoder - {word} <= changed(start, released), "the encoder must train once the warm-up is over"


def test_warm_up_is_automatic_only_for_fresh_heads(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_setup["model"])
    model = prepare_model_for_post_training(str(tiny_setup["model"]), tokenizer)
    # a BertForPreTraining checkpoint brings its MLM head; its pooler was saved untrained (bias exactly 0)
    assert model.fresh_heads == ["pooler", "urc_head"]
    bare = tmp_path / "bare"
    BertModel(BertConfig(**{**model.config.to_dict(), "architectures": None}), add_pooling_layer=False).save_pretrained(
        bare
    )
    tokenizer.save_pretrained(bare)
    assert prepare_model_for_post_training(str(bare), tokenizer).fresh_heads == ["mlm_head", "pooler", "urc_head"]
    assert resolve_warmup_steps(None, ["urc_head"], 600) == 60
    assert resolve_warmup_steps(None, [], 600) == 0
    assert resolve_warmup_steps(5, [], 600) == 5
    with pytest.raises(ValueError, match="at least 0"):
        resolve_warmup_steps(-1, [], 600)


def test_encoder_schedule_starts_when_released() -> None:
    encoder, head = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [encoder], "encoder": True}, {"params": [head], "encoder": False}], lr=1)
    scheduler = warmup_then_linear_decay(optimizer, warmup_steps=2, head_warmup_steps=4, total_steps=10)
    rates = []
    for _ in range(10):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    encoder_rates = [r[0] for r in rates]
    head_rates = [r[1] for r in rates]
    assert encoder_rates[:4] == [0, 0, 0, 0] and 0 < encoder_rates[4] < encoder_rates[5] < 1
    assert head_rates[0] > 0 and max(head_rates) == pytest.approx(1.0)
    assert head_rates[-1] < head_rates[3] and encoder_rates[-1] < max(encoder_rates)


def test_encoder_learning_rate_is_its_own(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    metrics = train(
        tiny_setup, tmp_path / "lr", "--max_steps", "2", "--head_warmup_steps", "0", "--encoder_learning_rate", "0"
    )
    assert metrics["train_loss"] > 0
    start = load_file(tiny_setup["model"] / "model.safetensors")
    after = load_file(tmp_path / "lr" / "model.safetensors")
    assert not (changed(start, after) & {name for name in start if is_encoder_parameter(name)})
