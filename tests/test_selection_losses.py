"""Fine-tuning's losses (listwise, cross-entropy, BCE), listwise rows, the score, and the mean-pooling selector."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig

import run_fine_tuning
from data_collators import ResponseSelectionCollator
from ko_mrs.dialogue_data import read_dialogues
from ko_mrs.fine_tuning import selection_loss
from ko_mrs.preprocessing import DialoguePool, build_pairs, tokenize_dialogues
from ko_mrs.ranking import ResponseSelector
from modeling_mrs import BertForResponseSelection, mean_pool, next_log_odds


def test_next_log_odds_is_the_log_odds_for_every_head_shape() -> None:
    two = torch.tensor([[0.5, 2.0], [1.0, -1.0]])
    assert next_log_odds(two).tolist() == pytest.approx([1.5, -2.0])
    assert torch.sigmoid(next_log_odds(two)).tolist() == pytest.approx(two.softmax(-1)[:, 1].tolist())
    assert next_log_odds(torch.tensor([[0.3], [-2.0]])).tolist() == pytest.approx([0.3, -2.0])
    three = torch.tensor([[0.0, 1.0, 2.0]])
    p = three.softmax(-1)[0]
    assert next_log_odds(three, next_index=2).item() == pytest.approx(math.log(p[2] / (1 - p[2])))


def test_losses_agree_where_they_should() -> None:
    logits = torch.tensor([[0.0, 2.0], [0.0, -1.0], [0.0, 0.5], [1.0, 0.0], [0.0, 0.0], [0.0, -3.0]])
    labels = torch.tensor([1, 0, 0, 1, 0, 0])
    # 2-class cross-entropy is BCE on the log-odds
    assert selection_loss(logits, labels, "cross_entropy").item() == pytest.approx(
        selection_loss(logits, labels, "bce").item()
    )
    # listwise: two groups of three, positive first
    scores = next_log_odds(logits).view(2, 3)
    expected = -(scores.log_softmax(-1)[:, 0]).mean()
    assert selection_loss(logits, labels, "listwise").item() == pytest.approx(expected.item())
    # shifting every score of a group leaves the listwise loss unchanged: only the order within a group matters
    shifted = logits + torch.tensor([[0.0, 5.0]])
    assert selection_loss(shifted, labels, "listwise").item() == pytest.approx(expected.item(), abs=1e-5)


def test_listwise_rows_expand_to_groups_positive_first(tiny_setup: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_setup["model"])
    dialogues, _ = read_dialogues(tiny_setup["validation"])
    tokenized = tokenize_dialogues(dialogues, tokenizer)
    pool = DialoguePool(tokenized)
    pointwise = build_pairs(tokenized, pool, negatives_per_positive=3, seed=4)
    listwise = build_pairs(tokenized, pool, negatives_per_positive=3, seed=4, listwise=True)
    assert len(pointwise) == 4 * len(listwise)
    # the same draws, laid out as groups
    assert [c for row in listwise["candidate_dialogue"] for c in row] == pointwise["candidate_dialogue"]
    assert all(row == [1, 0, 0, 0] for row in listwise["label"])
    batch = ResponseSelectionCollator(tokenizer, pool, max_length=64)(list(listwise.select(range(5))))
    assert batch["input_ids"].shape[0] == 20 and batch["labels"].tolist() == [1, 0, 0, 0] * 5
    same = ResponseSelectionCollator(tokenizer, pool, max_length=64)(list(pointwise.select(range(20))))
    assert torch.equal(batch["input_ids"], same["input_ids"])


def test_mean_pooling_masks_padding() -> None:
    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).item() == 2.0


@pytest.mark.parametrize(("loss", "pooling"), [("listwise", "mean"), ("bce", "cls")])
def test_fine_tuning_variants_train_save_and_rank(
    tiny_setup: dict[str, Path], tmp_path: Path, loss: str, pooling: str
) -> None:
    out = tmp_path / "fine"
    run_fine_tuning.run(
        [
            "--model_name_or_path", str(tiny_setup["model"]),
            "--train_files", str(tiny_setup["train"]),
            "--output_dir", str(out),
            "--do_train", "--max_steps", "3", "--loss", loss, "--pooling", pooling,
            "--negatives_per_positive", "3", "--per_device_train_batch_size", "4", "--max_seq_length", "64",
            "--report_to", "none", "--disable_tqdm", "true",
        ]
    )  # fmt: skip
    selector = ResponseSelector.from_pretrained(str(out), device="cpu")
    expected_class = BertForResponseSelection if pooling == "mean" else None
    if expected_class is not None:
        assert isinstance(selector.model, expected_class)
    assert selector.model.config.num_labels == (1 if loss == "bce" else 2)
    scores = selector.score(["차를 사려고 해요."], ["어떤 차요?", "비가 와요."])
    assert len(scores) == 2 and all(0 < s < 1 for s in scores)
    # the selector's probability is the sigmoid of the log-odds of one unbatched forward pass
    model = selector.model
    batch = selector.tokenizer("차를 사려고 해요.", "어떤 차요?", return_tensors="pt")
    with torch.no_grad():
        direct = torch.sigmoid(next_log_odds(model(**batch).logits, selector.next_index)).item()
    assert scores[0] == pytest.approx(direct, abs=1e-5)


def test_mean_pooling_selector_loads_by_its_class(tmp_path: Path) -> None:
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    config.architectures = ["BertForResponseSelection"]
    model = BertForResponseSelection(config)
    model.save_pretrained(tmp_path)
    saved = (tmp_path / "config.json").read_text()
    assert "BertForResponseSelection" in saved and "AutoModelForSequenceClassification" in saved  # auto_map
