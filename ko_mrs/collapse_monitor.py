"""Watch post-training for representation collapse: the spread of a fixed probe batch's representations.

Post-training can destroy an encoder quietly: its losses go down while the representations of different
(context, response) pairs converge to one point, and fine-tuning from it then never leaves the ln 2
plateau. The monitor encodes the same probe pairs at the start and at every evaluation and reports the
spread (the per-dimension standard deviation across the probe examples, averaged over dimensions) of
their mean-pooled last hidden states and of their [CLS] states, relative to the start. A spread below
``threshold`` of its start is logged as a warning; the numbers go into the logs, metrics and model card.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from modeling_mrs import mean_pool

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
PROBE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def spread(representations: torch.Tensor) -> float:
    """Mean over dimensions of the standard deviation across examples: 0 when every example looks the same."""
    return float(representations.float().std(dim=0).mean())


class CollapseMonitor:
    """Representation spread of a fixed batch of pairs, against the spread measured by :meth:`start`."""

    def __init__(self, probe_batch: Mapping[str, torch.Tensor], threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"the collapse threshold must be in [0, 1], got {threshold}")
        self.batch = {key: value for key, value in probe_batch.items() if key in PROBE_INPUTS}
        self.threshold = threshold
        self.initial: dict[str, float] | None = None
        self.latest: dict[str, float] = {}

    @torch.no_grad()
    def measure(self, model: nn.Module) -> dict[str, float]:
        """``probe_spread`` (mean-pooled) and ``probe_spread_cls`` of the encoder now; the model's mode is kept."""
        encoder = getattr(model, "bert", model)
        training = encoder.training
        encoder.eval()
        try:
            device = next(encoder.parameters()).device
            batch = {key: value.to(device) for key, value in self.batch.items()}
            hidden = encoder(**batch).last_hidden_state
        finally:
            encoder.train(training)
        return {
            "probe_spread": spread(mean_pool(hidden, batch.get("attention_mask"))),
            "probe_spread_cls": spread(hidden[:, 0]),
        }

    def start(self, model: nn.Module) -> dict[str, float]:
        """Measure the starting point (the encoder before post-training)."""
        self.initial = self.measure(model)
        self.latest = dict(self.initial)
        logger.info("Collapse monitor: starting spread %.4f (mean-pooled), %.4f ([CLS])", *self.initial.values())
        return self.initial

    def report(self, model: nn.Module) -> dict[str, float]:
        """The spreads now and as a ratio of the start; warns when the ratio falls below the threshold."""
        if self.initial is None:
            raise RuntimeError("call CollapseMonitor.start before report")
        now = self.measure(model)
        ratio = now["probe_spread"] / max(self.initial["probe_spread"], 1e-12)
        self.latest = {
            **now,
            "probe_spread_ratio": ratio,
            "probe_spread_cls_ratio": now["probe_spread_cls"] / max(self.initial["probe_spread_cls"], 1e-12),
        }
        if ratio < self.threshold:
            logger.warning(
                "REPRESENTATION COLLAPSE: the probe pairs' spread fell to %.3f of its start (%.4f -> %.4f), below "
                "the threshold %.2f. Fine-tuning from this checkpoint will likely do worse than from the base "
                "model; lower the learning rate or lengthen --head_warmup_steps.",
                ratio,
                self.initial["probe_spread"],
                now["probe_spread"],
                self.threshold,
            )
        return self.latest


def warn_if_at_prior(metrics: Mapping[str, float], margin: float = 0.01) -> bool:
    """Warn when URC accuracy is no better than predicting the majority class: the head has learned nothing."""
    accuracy, prior = metrics.get("urc_accuracy"), metrics.get("urc_prior")
    if accuracy is None or prior is None or accuracy > prior + margin:
        return False
    logger.warning(
        "The URC head is at its class prior: accuracy %.3f against %.3f for always answering the majority class. "
        "Post-training has so far taught it nothing about relevance.",
        accuracy,
        prior,
    )
    return True
