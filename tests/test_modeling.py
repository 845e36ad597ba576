"""Tests for the BERT-FP post-training model in modeling_mrs.py (tiny models, CPU, no network)."""

import ast
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForPreTraining,
    BertTokenizer,
    Trainer,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from modeling_mrs import BertForFineGrainedPostTraining, prepare_model_for_post_training

VOCAB_SIZE = 120
BATCH, SEQ_LEN = 4, 16


def tiny_config(**overrides: object) -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **overrides,
    )


def tiny_model(**overrides: object) -> BertForFineGrainedPostTraining:
    torch.manual_seed(0)
    return BertForFineGrainedPostTraining(tiny_config(**overrides))


def make_batch(num_urc_labels: int = 3, mask_every: int = 5) -> dict[str, torch.Tensor]:
    """Random ids with every `mask_every`-th position (after [CLS]) masked; `mask_every=0` masks nothing."""
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, VOCAB_SIZE, (BATCH, SEQ_LEN), generator=generator)
    input_ids[:, 0] = 2
    labels = torch.full_like(input_ids, -100)
    if mask_every:
        positions = torch.arange(1, SEQ_LEN, mask_every)
        labels[:, positions] = input_ids[:, positions]
        input_ids[:, positions] = 4
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "token_type_ids": torch.zeros_like(input_ids),
        "labels": labels,
        "urc_labels": torch.arange(BATCH) % num_urc_labels,
    }


def assert_every_trainable_param_has_grad(model: torch.nn.Module) -> None:
    """What DDP with `find_unused_parameters=False` needs: no trainable parameter left out of the graph."""
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"trainable parameters without a gradient: {missing}"
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name


def tensors_equal(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[key], right[key]) for key in left)


@contextmanager
def transformers_log_messages() -> Iterator[list[str]]:
    """Collect transformers' log messages (INFO and up); its root logger does not propagate to pytest's caplog."""

    class _ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    messages: list[str] = []
    handler = _ListHandler(logging.INFO)
    root = hf_logging.get_logger("transformers")
    previous_verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)
        hf_logging.set_verbosity(previous_verbosity)


def reported_missing_keys(messages: list[str]) -> set[str]:
    """Keys marked MISSING in transformers' load-report table (`key | MISSING | ...`)."""
    return {
        line.split("|")[0].strip()
        for message in messages
        for line in message.splitlines()
        if "|" in line and line.split("|")[1].strip() == "MISSING"
    }


def test_forward_backward_gives_finite_separate_losses() -> None:
    model = tiny_model()
    batch = make_batch()
    out = model(**batch)

    num_masked = int((batch["labels"] != -100).sum())
    assert out.mlm_logits.shape == (num_masked, VOCAB_SIZE)
    assert out.urc_logits.shape == (BATCH, 3)
    assert torch.isfinite(out.loss) and out.mlm_loss > 0 and out.urc_loss > 0
    torch.testing.assert_close(out.loss, out.mlm_loss + out.urc_loss)

    out.loss.backward()
    assert_every_trainable_param_has_grad(model)


def test_loss_weights_scale_each_part() -> None:
    model = tiny_model(mlm_loss_weight=0.5, urc_loss_weight=2.0)
    out = model(**make_batch())
    torch.testing.assert_close(out.loss, 0.5 * out.mlm_loss + 2.0 * out.urc_loss)


def test_mlm_logits_follow_masked_positions() -> None:
    """Gathered logits equal the full-sequence MLM head output at the masked positions, in row-major order."""
    model = tiny_model().eval()
    batch = make_batch()
    out = model(**batch, output_hidden_states=True)
    full_logits = model.cls(out.hidden_states[-1])
    torch.testing.assert_close(out.mlm_logits, full_logits[batch["labels"] != -100])


def test_urc_only_mode_skips_and_freezes_mlm_head() -> None:
    model = tiny_model(mlm_loss_weight=0.0)
    out = model(**make_batch())
    assert out.mlm_loss is None and out.mlm_logits is None
    torch.testing.assert_close(out.loss, out.urc_loss)

    assert not model.cls.predictions.transform.dense.weight.requires_grad
    assert not model.cls.predictions.bias.requires_grad
    assert model.bert.embeddings.word_embeddings.weight.requires_grad  # shared with the (unused) decoder
    out.loss.backward()
    assert_every_trainable_param_has_grad(model)


def test_mlm_only_mode_skips_and_freezes_urc_head() -> None:
    model = tiny_model(urc_loss_weight=0.0)
    out = model(**make_batch())
    assert out.urc_loss is None and out.urc_logits is None
    torch.testing.assert_close(out.loss, out.mlm_loss)

    assert not model.urc_classifier.out_proj.weight.requires_grad
    assert not model.bert.pooler.dense.weight.requires_grad
    out.loss.backward()
    assert_every_trainable_param_has_grad(model)


def test_objective_names_what_the_heads_learn() -> None:
    """The post-training card's first paragraph: an MLM-only or 2-class run must not be called 3-class BERT-FP."""
    assert tiny_model().objective == "MLM + URC (3-class)"
    assert tiny_model(num_urc_labels=2).objective == "MLM + NSP (2-class)"
    assert tiny_model(urc_loss_weight=0.0).objective == "MLM only"
    assert tiny_model(mlm_loss_weight=0.0).objective == "URC (3-class) only"


def test_freezing_survives_from_pretrained(tmp_path: Path) -> None:
    tiny_model(urc_loss_weight=0.0).save_pretrained(tmp_path)
    reloaded = BertForFineGrainedPostTraining.from_pretrained(tmp_path)
    assert not reloaded.urc_classifier.out_proj.weight.requires_grad
    assert not reloaded.bert.pooler.dense.weight.requires_grad


def test_batch_without_masked_tokens() -> None:
    model = tiny_model()
    out = model(**make_batch(mask_every=0))
    assert out.mlm_logits.shape == (0, VOCAB_SIZE)
    assert out.mlm_loss.item() == 0.0
    torch.testing.assert_close(out.loss, out.urc_loss)

    out.loss.backward()
    assert_every_trainable_param_has_grad(model)  # the MLM head gets zero gradients, not none
    assert torch.count_nonzero(model.cls.predictions.transform.dense.weight.grad) == 0


def test_mlm_loss_falls_on_a_memorisable_batch() -> None:
    model = tiny_model(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    batch = make_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        out = model(**batch)
        out.loss.backward()
        optimizer.step()
        losses.append(out.mlm_loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_two_label_nsp_mode() -> None:
    model = tiny_model(num_urc_labels=2)
    out = model(**make_batch(num_urc_labels=2))
    assert out.urc_logits.shape == (BATCH, 2)
    assert torch.isfinite(out.loss)


def test_config_defaults_are_written_to_config() -> None:
    config = tiny_model().config
    assert (config.num_urc_labels, config.mlm_loss_weight, config.urc_loss_weight) == (3, 1.0, 1.0)


def test_tuple_output_and_hidden_states() -> None:
    model = tiny_model().eval()
    batch = make_batch()
    out = model(**batch, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    as_tuple = model(**batch, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.loss)


def test_decoder_is_tied_to_word_embeddings() -> None:
    model = tiny_model()
    decoder = model.cls.predictions.decoder
    embeddings = model.bert.embeddings.word_embeddings
    assert decoder.weight.data_ptr() == embeddings.weight.data_ptr()
    assert decoder.bias is model.cls.predictions.bias

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(**make_batch()).loss.backward()
    optimizer.step()
    assert torch.equal(decoder.weight, embeddings.weight)


def test_save_pretrained_writes_loadable_remote_code(tmp_path: Path) -> None:
    model = tiny_model()
    model.save_pretrained(tmp_path)

    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert config["auto_map"] == {"AutoModelForPreTraining": "modeling_mrs.BertForFineGrainedPostTraining"}
    assert config["num_urc_labels"] == 3

    # The copied file is what the Hub serves with trust_remote_code: stdlib, torch and transformers only.
    tree = ast.parse((tmp_path / "modeling_mrs.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in modeling_mrs.py"
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"torch", "transformers"}

    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(reloaded).__name__ == "BertForFineGrainedPostTraining"
    assert tensors_equal(reloaded.state_dict(), model.state_dict())
    assert "urc_classifier.out_proj.weight" in reloaded.state_dict()


def test_checkpoint_loads_into_stock_classes_without_missing_encoder_weights(tmp_path: Path) -> None:
    model = tiny_model()
    model.save_pretrained(tmp_path)
    encoder_state = model.bert.state_dict()

    with transformers_log_messages() as messages:
        classifier, info = AutoModelForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert type(classifier).__name__ == "BertForSequenceClassification"
    assert info["missing_keys"] == {"classifier.weight", "classifier.bias"}
    assert reported_missing_keys(messages) == {"classifier.weight", "classifier.bias"}
    assert tensors_equal(classifier.bert.state_dict(), encoder_state)

    with transformers_log_messages() as messages:
        encoder, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(encoder).__name__ == "BertModel"
    assert not info["missing_keys"]
    assert not reported_missing_keys(messages)
    assert tensors_equal(encoder.state_dict(), encoder_state)


def test_prepare_model_for_post_training_loads_mlm_head_and_resizes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = BertForPreTraining(tiny_config())
    source.save_pretrained(tmp_path)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB_SIZE - 5)]
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(tokens)})
    assert len(tokenizer) == VOCAB_SIZE
    tokenizer.add_special_tokens({"additional_special_tokens": ["[EOT]"]})

    with transformers_log_messages() as messages:
        model = prepare_model_for_post_training(str(tmp_path), tokenizer, num_urc_labels=2, mlm_loss_weight=0.5)
    assert reported_missing_keys(messages) == {"urc_classifier.out_proj.weight", "urc_classifier.out_proj.bias"}
    assert (model.config.num_urc_labels, model.config.mlm_loss_weight) == (2, 0.5)

    source_state = source.state_dict()
    for name, value in model.cls.predictions.transform.state_dict().items():
        assert torch.equal(value, source_state[f"cls.predictions.transform.{name}"]), name
    assert torch.equal(model.cls.predictions.bias[:VOCAB_SIZE], source.cls.predictions.bias)
    word_embeddings = model.bert.embeddings.word_embeddings.weight
    assert torch.equal(word_embeddings[:VOCAB_SIZE], source.bert.embeddings.word_embeddings.weight)

    assert len(tokenizer) == VOCAB_SIZE + 1
    padded = -(-len(tokenizer) // 8) * 8  # rounded up to a multiple of 8 for tensor cores
    assert word_embeddings.shape[0] == model.config.vocab_size == padded
    assert model.cls.predictions.decoder.weight is word_embeddings
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    assert model.cls.predictions.bias.shape[0] == padded

    batch = make_batch(num_urc_labels=2)
    batch["input_ids"][:, 3] = len(tokenizer) - 1  # the new [EOT] id
    assert torch.isfinite(model(**batch).loss)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_trainer_does_not_treat_model_as_accepting_loss_kwargs(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = Trainer(model=tiny_model(), args=args)
    assert trainer.model_accepts_loss_kwargs is False
    # Both label columns are detected from the signature, so evaluation batches count as labelled.
    assert trainer.label_names == ["labels", "urc_labels"]
