"""The collapse monitor: its number on a healthy and on a collapsed encoder, and its place in post-training."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

import run_post_training
from ko_mrs.collapse_monitor import CollapseMonitor, spread, warn_if_at_prior


def probe() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, 100, (16, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[::2, 8:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": torch.zeros(16)}


def encoder() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    return BertModel(config)


def test_spread_is_zero_only_when_every_example_looks_the_same() -> None:
    assert spread(torch.ones(5, 3)) == 0
    assert spread(torch.tensor([[0.0, 0.0], [2.0, 2.0]])) == pytest.approx(2**0.5)


def test_healthy_encoder_keeps_its_spread_and_collapsed_one_warns(caplog: pytest.LogCaptureFixture) -> None:
    model = encoder()
    monitor = CollapseMonitor(probe(), threshold=0.5)
    initial = monitor.start(model)
    assert initial["probe_spread"] > 0.1 and initial["probe_spread_cls"] > 0.1
    with caplog.at_level(logging.WARNING, logger="ko_mrs.collapse_monitor"):
        healthy = monitor.report(model)
    assert healthy["probe_spread_ratio"] == pytest.approx(1.0)
    assert not caplog.records

    # collapse: the last LayerNorm maps every position to its bias, so every pair has one representation
    with torch.no_grad():
        model.encoder.layer[-1].output.LayerNorm.weight.zero_()
    with caplog.at_level(logging.WARNING, logger="ko_mrs.collapse_monitor"):
        collapsed = monitor.report(model)
    assert collapsed["probe_spread"] == pytest.approx(0.0, abs=1e-6)
    assert collapsed["probe_spread_ratio"] < 0.01
    assert any("REPRESENTATION COLLAPSE" in record.message for record in caplog.records)


def test_measuring_keeps_the_training_mode() -> None:
    model = encoder().train()
    CollapseMonitor(probe()).start(model)
    assert model.training


def test_urc_at_its_prior_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ko_mrs.collapse_monitor"):
        assert warn_if_at_prior({"urc_accuracy": 0.5, "urc_prior": 0.5})
        assert not warn_if_at_prior({"urc_accuracy": 0.7, "urc_prior": 0.5})
    assert len(caplog.records) == 1


def test_post_training_logs_the_monitor_and_puts_it_in_the_card(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    metrics = run_post_training.run(
        [
            "--model_name_or_path", str(tiny_setup["model"]),
            "--train_files", str(tiny_setup["train"]),
            "--validation_files", str(tiny_setup["validation"]),
            "--output_dir", str(out),
            "--do_train", "--do_eval", "--max_steps", "4", "--eval_strategy", "steps", "--eval_steps", "2",
            "--max_seq_length", "64", "--per_device_train_batch_size", "8", "--probe_size", "16",
            "--report_to", "none", "--disable_tqdm", "true",
        ]
    )  # fmt: skip
    for key in ("eval_probe_spread", "eval_probe_spread_ratio", "eval_urc_prior", "train_probe_spread_ratio"):
        assert key in metrics, key
    assert 0 < metrics["eval_urc_prior"] <= 1
    evaluations = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "eval_loss" in e]
    assert len(evaluations) >= 2 and all("eval_probe_spread" in e for e in evaluations)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## Representation health" in card and f"{metrics['eval_probe_spread']:.4f}" in card
