"""Fresh heads learn before they touch the encoder: head warm-up and a separate encoder learning rate.

A randomly initialised MLM head (tied to the word embeddings), URC head or pooler sends large, noisy
gradients into a pretrained encoder in its first steps; on encoders without pretrained heads
(sentence-transformers models, multilingual-e5) that collapsed the representations. So post-training
first trains only the new parts with the encoder frozen, then releases the encoder with a learning-rate
warm-up of its own, optionally at a lower learning rate than the heads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Sequence

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger(__name__)

# The pretrained encoder; everything else of the post-training model (MLM transform and bias, pooler, URC head)
# is a head. The tied MLM decoder is the word-embedding matrix, so it belongs to the encoder.
ENCODER_PREFIXES = ("bert.embeddings.", "bert.encoder.")
# With fresh heads and `head_warmup_steps` left to its default, this share of the run warms the heads up.
AUTO_WARMUP_SHARE = 0.1


def is_encoder_parameter(name: str) -> bool:
    return name.startswith(ENCODER_PREFIXES)


def resolve_warmup_steps(requested: int | None, fresh_heads: Sequence[str], total_steps: int) -> int:
    """``requested`` as given, or (None) ``AUTO_WARMUP_SHARE`` of the run when some head starts fresh, else 0."""
    if requested is not None:
        if requested < 0:
            raise ValueError(f"head_warmup_steps must be at least 0, got {requested}")
        return requested
    return math.ceil(AUTO_WARMUP_SHARE * total_steps) if fresh_heads else 0


def parameter_groups(
    model: nn.Module,
    decay_names: Collection[str],
    learning_rate: float,
    encoder_learning_rate: float | None,
    weight_decay: float,
) -> list[dict]:
    """Optimizer groups: encoder and heads, each split into ``decay_names`` (Trainer's) and the rest.

    Every group carries ``"encoder"``, which :func:`warmup_then_linear_decay` reads.
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups.setdefault((is_encoder_parameter(name), name in decay_names), []).append(parameter)
    encoder_lr = learning_rate if encoder_learning_rate is None else encoder_learning_rate
    return [
        {
            "params": params,
            "weight_decay": weight_decay if decay else 0.0,
            "lr": encoder_lr if encoder else learning_rate,
            "encoder": encoder,
        }
        for (encoder, decay), params in sorted(groups.items(), key=lambda item: (not item[0][0], not item[0][1]))
    ]


def warmup_then_linear_decay(optimizer: Optimizer, warmup_steps: int, head_warmup_steps: int, total_steps: int):
    """Linear warm-up and decay for the heads; the encoder's schedule starts when it is released.

    Heads: 0 -> 1 over ``warmup_steps``, then linear to 0 at ``total_steps`` (Trainer's "linear"). Encoder: 0
    until ``head_warmup_steps``, then its own ``warmup_steps`` warm-up, then the same decay, so it is never
    released at full learning rate into gradients it has not seen.
    """

    def linear(step: int, start: int) -> float:
        step -= start
        if step < 0:
            return 0.0
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - start - step) / max(1, total_steps - start - warmup_steps))

    lambdas = [
        (lambda step: linear(step, head_warmup_steps)) if group.get("encoder") else (lambda step: linear(step, 0))
        for group in optimizer.param_groups
    ]
    return LambdaLR(optimizer, lambdas)


class HeadWarmupCallback(TrainerCallback):
    """Freeze exactly the encoder (``ENCODER_PREFIXES``) until ``steps`` optimizer steps are done.

    Frozen by ``requires_grad``, so the warm-up steps skip the encoder's backward pass. Decided from
    ``state.global_step`` at the start of training and after every step, so a run resumed past the
    warm-up starts released.
    """

    def __init__(self, model: nn.Module, steps: int) -> None:
        self.encoder = [p for name, p in model.named_parameters() if is_encoder_parameter(name) and p.requires_grad]
        self.steps = steps
        self.frozen: bool | None = None

    def _update(self, state: TrainerState) -> None:
        frozen = state.global_step < self.steps
        if frozen == self.frozen:
            return
        for parameter in self.encoder:
            parameter.requires_grad_(not frozen)
        if frozen:
            logger.info("Head warm-up: the encoder is frozen until step %d; the fresh heads train alone", self.steps)
        elif self.frozen is not None:
            logger.info("Head warm-up done at step %d: the encoder trains from now on", state.global_step)
        self.frozen = frozen

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        self._update(state)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        self._update(state)
