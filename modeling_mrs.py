"""BERT-FP fine-grained post-training model (Han et al., NAACL 2021): MLM + utterance relevance classification.

This file is copied next to the weights by `save_pretrained` and loaded from the Hub with `trust_remote_code=True`,
so it must import nothing but the standard library, torch and transformers.

Parameter names match transformers' BERT classes (`bert.*`, `cls.predictions.*`), so a post-trained checkpoint
loads into `AutoModel` / `AutoModelForSequenceClassification` without remote code, and a `BertForPreTraining` /
`BertForMaskedLM` checkpoint (e.g. `klue/bert-base`) brings its MLM head into post-training.
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import BertConfig, BertModel, BertPreTrainedModel, PreTrainedTokenizerBase
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.models.bert.modeling_bert import BertOnlyMLMHead
from transformers.utils import ModelOutput

# Defaults for the BERT-FP attributes stored in the `BertConfig` (written into it on construction).
# 3 URC labels: random / same-dialogue-but-wrong / correct next utterance; 2 gives the NSP-style ablation.
URC_CONFIG_DEFAULTS: dict[str, Any] = {"num_urc_labels": 3, "mlm_loss_weight": 1.0, "urc_loss_weight": 1.0}


@dataclass
class FineGrainedPostTrainingOutput(ModelOutput):
    """Output of `BertForFineGrainedPostTraining`.

    `mlm_logits` covers only the masked positions (shape `[num_masked, vocab_size]`, row order as in
    `labels[labels != -100]`); a full `[batch, seq, vocab]` tensor is never built.
    """

    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    urc_loss: torch.Tensor | None = None
    urc_logits: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class ZeroInitEmbedding(nn.Embedding):
    """An embedding that starts at exactly 0 (see `UtteranceFeatureEmbeddings`)."""


class UtteranceFeatureEmbeddings(nn.Module):
    """SA-BERT-style per-token features added to the word embeddings: who said the token's utterance (relative to
    the reply, `ko_mrs.speakers`) and how many turns back it is.

    Zero-initialised, so adding them to a pretrained encoder leaves its outputs exactly as they were until
    training moves them. Which ones exist follows `config.mrs_speaker_encoding` / `mrs_turn_distance_encoding`
    ("embeddings"); their sizes `mrs_max_speakers` and `mrs_max_turn_distance + 1` (0: the reply and specials).
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.speaker = self.turn = None
        if getattr(config, "mrs_speaker_encoding", None) == "embeddings":
            self.speaker = ZeroInitEmbedding(config.mrs_max_speakers, config.hidden_size)
        if getattr(config, "mrs_turn_distance_encoding", None) == "embeddings":
            self.turn = ZeroInitEmbedding(config.mrs_max_turn_distance + 1, config.hidden_size)

    @staticmethod
    def wanted(config: BertConfig) -> bool:
        return "embeddings" in (
            getattr(config, "mrs_speaker_encoding", None),
            getattr(config, "mrs_turn_distance_encoding", None),
        )

    def forward(
        self, word_embeddings: torch.Tensor, speaker_ids: torch.Tensor | None, turn_ids: torch.Tensor | None
    ) -> torch.Tensor:
        for table, ids in ((self.speaker, speaker_ids), (self.turn, turn_ids)):
            if table is not None:
                if ids is None:
                    raise ValueError("this model adds speaker/turn embeddings: pass speaker_ids and turn_ids")
                word_embeddings = word_embeddings + table(ids)
        return word_embeddings


def _encode(
    model: nn.Module,
    input_ids: torch.Tensor,
    speaker_ids: torch.Tensor | None,
    turn_ids: torch.Tensor | None,
    **kwargs: Any,
):
    """`model.bert(...)`, with the utterance features added to the word embeddings when the model has them."""
    features = getattr(model, "utterance_features", None)
    if features is None:
        return model.bert(input_ids, **kwargs)
    embeds = features(model.bert.embeddings.word_embeddings(input_ids), speaker_ids, turn_ids)
    return model.bert(inputs_embeds=embeds, **kwargs)


def _zero_feature_embeddings(module: nn.Module) -> None:
    if isinstance(module, ZeroInitEmbedding):
        init.zeros_(module.weight)


class BertUrcHead(nn.Module):
    """Utterance relevance classifier on the pooled [CLS] output (dropout + linear, like BERT's NSP head)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_urc_labels)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(pooled_output))


class BertForFineGrainedPostTraining(BertPreTrainedModel):
    """BERT with an MLM head (`cls`, tied to the word embeddings) and a URC head (`urc_classifier`).

    The URC head is deliberately not called `classifier`, so `AutoModelForSequenceClassification` starts its
    response-selection classifier fresh instead of inheriting the 3-way URC weights.

    A head whose loss weight is 0 (URC-only / MLM-only ablations) is skipped in `forward` and frozen here:
    DDP without `find_unused_parameters` fails on trainable parameters that never get a gradient.
    """

    config_class = BertConfig
    base_model_prefix = "bert"
    # Trainer passes `num_items_in_batch` to, and under DDP rescales the loss of, models that accept loss kwargs.
    # Our losses are per-batch means, so opt out explicitly.
    accepts_loss_kwargs = False
    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }
    # BertForPreTraining checkpoints carry an NSP head; BERT-FP replaces it with the URC head.
    _keys_to_ignore_on_load_unexpected = [r"^cls\.seq_relationship\."]

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        for key, default in URC_CONFIG_DEFAULTS.items():
            if getattr(config, key, None) is None:
                setattr(config, key, default)

        self.bert = BertModel(config)
        self.cls = BertOnlyMLMHead(config)
        self.urc_classifier = BertUrcHead(config)
        if UtteranceFeatureEmbeddings.wanted(config):
            self.utterance_features = UtteranceFeatureEmbeddings(config)

        self.post_init()
        self._freeze_unused_heads()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        _zero_feature_embeddings(module)

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """Re-apply `_freeze_unused_heads`: loading replaces the parameters and resets their `requires_grad`."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # tuple with `output_loading_info=True`
        model._freeze_unused_heads()
        return loaded

    @property
    def uses_mlm(self) -> bool:
        return self.config.mlm_loss_weight != 0

    @property
    def uses_urc(self) -> bool:
        return self.config.urc_loss_weight != 0

    @property
    def objective(self) -> str:
        """What this model is post-trained on, in words, for its model card: "MLM + URC (3-class)", "MLM only"."""
        urc = f"{'NSP' if self.config.num_urc_labels == 2 else 'URC'} ({self.config.num_urc_labels}-class)"
        return " + ".join(part for part, used in (("MLM", self.uses_mlm), (urc, self.uses_urc)) if used) + (
            "" if self.uses_mlm and self.uses_urc else " only"
        )

    def _freeze_unused_heads(self) -> None:
        """Freeze parameters that a zero loss weight leaves out of the graph (see the class docstring)."""
        if not self.uses_mlm:
            # Not `self.cls`: its decoder weight is the (still trained) word embedding matrix.
            self.cls.predictions.transform.requires_grad_(False)
            self.cls.predictions.bias.requires_grad_(False)
        if not self.uses_urc:
            self.bert.pooler.requires_grad_(False)
            self.urc_classifier.requires_grad_(False)

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        urc_labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        speaker_ids: torch.Tensor | None = None,
        turn_ids: torch.Tensor | None = None,
    ) -> FineGrainedPostTrainingOutput | tuple[torch.Tensor, ...]:
        """`labels`: MLM targets, -100 at unmasked positions. `urc_labels`: one URC class per sequence.
        `speaker_ids` / `turn_ids`: per-token utterance features, for a model that has their embeddings.

        The loss is `mlm_loss_weight * mlm_loss + urc_loss_weight * urc_loss` over the losses that were computed.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = _encode(
            self,
            input_ids,
            speaker_ids,
            turn_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            # Resolved here because BertModel takes an explicit None as False rather than as "use the config".
            output_attentions=output_attentions if output_attentions is not None else self.config.output_attentions,
            output_hidden_states=(
                output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
            ),
            return_dict=True,
        )

        mlm_loss = mlm_logits = None
        if self.uses_mlm and labels is not None:
            mlm_loss, mlm_logits = self._masked_lm(outputs.last_hidden_state, labels)

        urc_loss = urc_logits = None
        if self.uses_urc:
            urc_logits = self.urc_classifier(outputs.pooler_output)
            if urc_labels is not None:
                urc_loss = F.cross_entropy(urc_logits, urc_labels.view(-1))

        weighted = [
            weight * part_loss
            for weight, part_loss in ((self.config.mlm_loss_weight, mlm_loss), (self.config.urc_loss_weight, urc_loss))
            if part_loss is not None
        ]
        loss = sum(weighted) if weighted else None

        output = FineGrainedPostTrainingOutput(
            loss=loss,
            mlm_loss=mlm_loss,
            urc_loss=urc_loss,
            urc_logits=urc_logits,
            mlm_logits=mlm_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()

    def _masked_lm(self, sequence_output: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MLM loss and logits over masked positions only.

        Gathering first skips the vocabulary projection for the ~85% of positions that have no target, which is
        most of the head's compute and memory at a 32k vocabulary.

        The loss is a sum divided by `max(num_masked, 1)` rather than a mean: with no masked token in the batch the
        head still runs on an empty tensor, so the loss is an exact 0 that depends on every MLM head parameter.
        Under DDP each of them then gets a (zero) gradient, instead of being reported as unused (or the mean's NaN).
        """
        is_masked = labels != -100
        targets = labels[is_masked]
        logits = self.cls(sequence_output[is_masked])
        loss = F.cross_entropy(logits, targets, reduction="sum") / max(targets.numel(), 1)
        return loss, logits


class BertForResponseSelection(BertPreTrainedModel):
    """A cross-encoder that classifies the mean of the last hidden states instead of the pooled [CLS].

    The pooler of many encoders is untrained (sentence-transformers models, multilingual-e5) while their
    mean-pooled states are what they were trained to make meaningful. Parameter names are those of
    `BertForSequenceClassification` (`bert.*`, `classifier.*`); `config.architectures` names this class, and
    ko-mrs loads it by that name, so the mean pooling is never silently replaced by a random pooler.
    """

    config_class = BertConfig
    base_model_prefix = "bert"
    _keys_to_ignore_on_load_unexpected = [r"^bert\.pooler\.", r"^cls\.", r"^urc_classifier\."]

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        _add_classifier(self, config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        """`labels`: class indices (cross-entropy), or 0/1 targets for a single logit (BCE)."""
        hidden = self.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids
        ).last_hidden_state
        logits = self.classifier(self.dropout(mean_pool(hidden, attention_mask)))
        return _classifier_output(self, logits, labels, return_dict)


class BertForSpeakerAwareSelection(BertPreTrainedModel):
    """A response selector with `UtteranceFeatureEmbeddings` (speaker and/or turn-distance embeddings).

    Parameter names are those of `BertForSequenceClassification` (or of `BertForResponseSelection` with
    `config.mrs_pooling = "mean"`) plus `utterance_features.*`, so a fine-tuned or post-trained checkpoint loads
    into it with only the (zero) feature embeddings new: its logits start unchanged. Speaker *tokens* need no
    class of their own: that model stays a plain `BertForSequenceClassification`.
    """

    config_class = BertConfig
    base_model_prefix = "bert"
    _keys_to_ignore_on_load_unexpected = [r"^cls\.", r"^urc_classifier\."]

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.mean_pooled = getattr(config, "mrs_pooling", "cls") == "mean"
        if self.mean_pooled:
            self._keys_to_ignore_on_load_unexpected = [*self._keys_to_ignore_on_load_unexpected, r"^bert\.pooler\."]
        self.bert = BertModel(config, add_pooling_layer=not self.mean_pooled)
        _add_classifier(self, config)
        self.utterance_features = UtteranceFeatureEmbeddings(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        _zero_feature_embeddings(module)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        speaker_ids: torch.Tensor | None = None,
        turn_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        """`labels`: class indices (cross-entropy), or 0/1 targets for a single logit (BCE)."""
        outputs = _encode(
            self,
            input_ids,
            speaker_ids,
            turn_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
        )
        pooled = mean_pool(outputs.last_hidden_state, attention_mask) if self.mean_pooled else outputs.pooler_output
        logits = self.classifier(self.dropout(pooled))
        return _classifier_output(self, logits, labels, return_dict)


def _add_classifier(model: BertPreTrainedModel, config: BertConfig) -> None:
    """The selector heads' dropout + linear classifier, named as in `BertForSequenceClassification`."""
    model.num_labels = config.num_labels
    dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    model.dropout = nn.Dropout(dropout)
    model.classifier = nn.Linear(config.hidden_size, config.num_labels)


def _classifier_output(
    model: BertPreTrainedModel, logits: torch.Tensor, labels: torch.Tensor | None, return_dict: bool | None
) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
    """The selector heads' output: cross-entropy over class indices, or BCE on 0/1 targets for a single logit."""
    loss = None
    if labels is not None:
        if model.num_labels == 1:
            loss = F.binary_cross_entropy_with_logits(logits[:, 0].float(), labels.float())
        else:
            loss = F.cross_entropy(logits.float(), labels.view(-1))
    output = SequenceClassifierOutput(loss=loss, logits=logits)
    return_dict = return_dict if return_dict is not None else model.config.return_dict
    return output if return_dict else output.to_tuple()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The mean of `hidden` over the positions the mask keeps (all of them without a mask)."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def next_log_odds(logits: torch.Tensor, next_index: int = 1) -> torch.Tensor:
    """The response-selection score: log P(next) - log P(not next), whatever the head's shape.

    One logit (BCE) is the log-odds itself; with several classes the others are pooled. Monotone in
    P(next) = sigmoid(score), without the probability's saturation into ties near 0 and 1.
    """
    logits = logits.float()
    if logits.shape[-1] == 1:
        return logits[:, 0]
    others = torch.cat([logits[:, :next_index], logits[:, next_index + 1 :]], dim=-1)
    return logits[:, next_index] - torch.logsumexp(others, dim=-1)


# The parts of BertForFineGrainedPostTraining that a plain BERT encoder checkpoint may lack; each starts fresh then.
HEAD_PREFIXES: dict[str, tuple[str, ...]] = {
    "mlm_head": ("cls.predictions.transform.", "cls.predictions.bias"),
    "pooler": ("bert.pooler.",),
    "urc_head": ("urc_classifier.",),
}


def prepare_model_for_post_training(
    model_name_or_path: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    config: BertConfig | None = None,
    **config_overrides: Any,
) -> BertForFineGrainedPostTraining:
    """Load a BERT checkpoint (local directory or Hub id) for BERT-FP post-training.

    `config` (default: the checkpoint's) takes `config_overrides` (e.g. `num_urc_labels`, `mlm_loss_weight`) before
    the model is built: `from_pretrained(**kwargs)` would only apply kwargs that are already attributes of
    `BertConfig`. The embeddings grow to `len(tokenizer)` (rounded up to a multiple of 8) for added special tokens
    such as `[EOT]`; they never shrink, since a checkpoint may pad its vocabulary beyond the tokenizer.

    `model.fresh_heads` names the heads (`HEAD_PREFIXES`) the checkpoint did not have, from the load report, and
    a pooler whose bias is exactly 0 (saved, never trained): they start random, and post-training warms them up
    before they touch the encoder.
    """
    config = config if config is not None else BertConfig.from_pretrained(model_name_or_path)
    for key, value in config_overrides.items():
        setattr(config, key, value)
    model, loading_info = BertForFineGrainedPostTraining.from_pretrained(
        model_name_or_path, config=config, output_loading_info=True
    )
    missing = loading_info["missing_keys"]
    model.fresh_heads = [
        head for head, prefixes in HEAD_PREFIXES.items() if any(key.startswith(prefixes) for key in missing)
    ]
    # A pooler saved but never trained (sentence-transformers models ship one with its bias exactly 0) is as fresh.
    if "pooler" not in model.fresh_heads and not model.bert.pooler.dense.bias.detach().any():
        model.fresh_heads.insert(1 if "mlm_head" in model.fresh_heads else 0, "pooler")
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        # a multiple of 8 keeps the tied vocabulary projection on GPU tensor cores (klue: 32,000 + [EOT])
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=8)
    return model


BertForFineGrainedPostTraining.register_for_auto_class("AutoModelForPreTraining")
BertForResponseSelection.register_for_auto_class("AutoModelForSequenceClassification")
BertForSpeakerAwareSelection.register_for_auto_class("AutoModelForSequenceClassification")
