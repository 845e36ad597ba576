"""Bi-encoder training on the Trainer: in-batch contrastive loss plus distillation from a cross-encoder teacher.

``run_distillation.py`` wires these to its arguments. Each training row is a context and its candidate list (the
positive, random and hard negatives of :class:`ko_mrs.negatives.NegativeSampler`); the student scores the context
against every reply of the batch (in-batch negatives: cross-entropy towards its own positive) and, with a
``teacher_weight`` above 0, learns the teacher's scores over its own list:

* ``kl``: listwise KL divergence between the teacher's and the student's softmax over the list;
* ``margin_mse``: Margin-MSE (Hofstätter et al. 2020), the squared error between the student's and the teacher's
  margins ``score(positive) - score(negative)``: it copies the teacher's score gaps, not only their order.

The teacher's scores (:func:`ko_mrs.scoring.next_scores`, the log-odds of "next" the teacher was evaluated on) are
computed once per (teacher, rows) and cached by ``datasets`` under a fingerprint of both (:func:`add_teacher_scores`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, Sequence, Value
from datasets.fingerprint import Hasher
from torch.nn import functional as F

from data_collators import ResponseSelectionCollator
from ko_mrs.bi_encoder import score_rows
from ko_mrs.preprocessing import DialoguePool, tokenize_dialogues
from ko_mrs.ranking import ResponseSelector
from ko_mrs.scoring import next_scores
from ko_mrs.training import MrsTrainer, MrsTrainingArguments

logger = logging.getLogger(__name__)

DISTILLATION_LOSSES = ("kl", "margin_mse")
TEACHER_SCORES = "teacher_scores"


@dataclass
class DistillationArguments(MrsTrainingArguments):
    """Trainer arguments plus the loss: ``loss = contrastive + teacher_weight * distillation``."""

    learning_rate: float = field(default=5e-5)
    teacher_weight: float = field(
        default=1.0, metadata={"help": "Weight of the distillation loss; 0 trains without a teacher (the ablation)."}
    )
    distillation_loss: str = field(
        default="kl",
        metadata={
            "help": "kl: listwise KL divergence between the teacher's and the student's softmax over each context's "
            "candidates; margin_mse: squared error between their score margins (positive minus each negative).",
            "choices": DISTILLATION_LOSSES,
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of both sides of the KL loss."})
    scale: float | None = field(
        default=None,
        metadata={
            "help": "Student scores are multiplied by this in every loss (cosine scores lie in [-1, 1]); "
            "default 20 for cosine (sentence-transformers' MultipleNegativesRankingLoss), 1 for dot."
        },
    )
    metric_for_best_model: str | None = field(default="r10@1")
    greater_is_better: bool | None = field(default=True)
    label_names: list[str] | None = field(default_factory=lambda: ["labels"])

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.teacher_weight < 0:
            raise ValueError(f"--teacher_weight must be at least 0, got {self.teacher_weight}")
        if self.temperature <= 0:
            raise ValueError(f"--temperature must be above 0, got {self.temperature}")


def contrastive_loss(scores: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each context over every reply of the batch; context ``i``'s positive is reply ``i * k``."""
    per_context = scores.shape[1] // scores.shape[0]
    targets = torch.arange(scores.shape[0], device=scores.device) * per_context
    return F.cross_entropy(scores.float(), targets)


def listwise_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) of the softmaxes over each row's candidates, times T² (Hinton et al.'s scaling)."""
    log_student = F.log_softmax(student.float() / temperature, dim=-1)
    target = F.softmax(teacher.float() / temperature, dim=-1)
    return F.kl_div(log_student, target, reduction="batchmean") * temperature**2


def margin_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the margins positive - negative (the positive is column 0)."""
    student_margins = student[:, :1].float() - student[:, 1:].float()
    teacher_margins = teacher[:, :1].float() - teacher[:, 1:].float()
    return F.mse_loss(student_margins, teacher_margins)


def own_candidates(scores: torch.Tensor) -> torch.Tensor:
    """``[B, k]``: each context's scores over its own candidate list, out of the ``[B, B * k]`` in-batch matrix."""
    contexts = scores.shape[0]
    per_context = scores.shape[1] // contexts
    rows = torch.arange(contexts, device=scores.device)
    return scores.view(contexts, contexts, per_context)[rows, rows]


class DistillationTrainer(MrsTrainer):
    """Trains a :class:`~ko_mrs.bi_encoder.BertBiEncoder` with ``args``' losses; evaluates it on pair rows.

    The loss's parts (``contrastive_loss`` and ``distillation_loss``) are logged beside the total, so a run with
    one distillation loss measures the other too. Evaluation scores each (context, candidate) pair by the
    student's inner product, gathered with the pair's label, group id and candidate index.
    """

    def __init__(self, *args, scale: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale = scale
        self._parts: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        output = model(
            context_input_ids=inputs["context_input_ids"],
            context_attention_mask=inputs["context_attention_mask"],
            reply_input_ids=inputs["reply_input_ids"],
            reply_attention_mask=inputs["reply_attention_mask"],
        )
        scores = output.scores * self.scale
        loss = contrastive = contrastive_loss(scores)
        parts = {"contrastive_loss": contrastive}
        teacher = inputs.get(TEACHER_SCORES)
        if teacher is not None:
            student = own_candidates(scores)
            parts["kl_loss"] = listwise_kl(student, teacher, self.args.temperature)
            parts["margin_mse_loss"] = margin_mse(student, teacher)
            if self.args.teacher_weight > 0:
                loss = loss + self.args.teacher_weight * parts[f"{self.args.distillation_loss}_loss"]
        if model.training:
            for name, value in parts.items():
                self._parts[name].append(float(value.detach()))
        return (loss, output) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._parts:  # a training log: the parts averaged over the same steps
            logs.update({name: round(sum(v) / len(v), 4) for name, v in self._parts.items()})
            self._parts.clear()
        super().log(logs, *args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            scores = score_rows(model, inputs)
        return None, scores, (inputs["labels"], inputs["group_id"], inputs["candidate_index"])


def model_fingerprint(model: str) -> str:
    """What identifies a model (a teacher for the score cache, a retriever for its index): its config and the
    bytes of its weights, not its path alone."""
    path = Path(model)
    if not path.is_dir():
        return Hasher.hash(model)  # a Hub id: its revision is what from_pretrained resolves
    digest = hashlib.sha256()
    for file in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) + [path / "config.json"]:
        if file.is_file():
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def load_teacher(teacher: str, device: str | None = None) -> ResponseSelector:
    """The teacher as a :class:`~ko_mrs.ranking.ResponseSelector` (it refuses a model without a trained head)."""
    return ResponseSelector.from_pretrained(teacher, device=device)


def add_teacher_scores(
    rows: Dataset,
    dialogues: Dataset,
    teacher: str,
    *,
    batch_size: int = 32,
    device: str | None = None,
) -> Dataset:
    """``rows`` (listwise, from ``build_pairs(listwise=True)`` over ``dialogues``) with the teacher's scores.

    ``teacher_scores`` of a row: the teacher's log-odds of "next" for each of its candidates, in order, scored as
    the teacher was evaluated (its own tokenizer, layout and ``max_length``). Computed once: ``datasets`` caches
    the column under a fingerprint of the rows and of the teacher's weights, so a rerun, a resume or a second
    student on the same data reads it back; another teacher or other rows compute it afresh.
    """
    fingerprint = Hasher.hash([rows._fingerprint, model_fingerprint(teacher), "teacher-scores-v1"])
    state: dict[str, object] = {}

    def setup() -> dict[str, object]:
        """Loaded on the first batch only, so a cached column costs no model load."""
        if not state:
            selector = load_teacher(teacher, device)
            pool = DialoguePool(tokenize_dialogues(dialogues, selector.tokenizer), same_corpus_negatives=False)
            collator = ResponseSelectionCollator(
                tokenizer=selector.tokenizer, pool=pool, max_length=selector.max_length
            )
            state.update(selector=selector, collator=collator)
            logger.info("teacher %s scores %d candidate lists", teacher, len(rows))
        return state

    @torch.inference_mode()
    def score(batch: dict[str, list]) -> dict[str, list]:
        s = setup()
        selector = s["selector"]
        features = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        inputs = {k: v.to(selector.device) for k, v in s["collator"](features).items()}
        scores = next_scores(selector.model, inputs, selector.next_index).float().cpu()
        return {TEACHER_SCORES: scores.view(len(features), -1).tolist()}

    features = rows.features.copy()
    features[TEACHER_SCORES] = Sequence(Value("float32"))
    return rows.map(
        score,
        batched=True,
        batch_size=batch_size,
        features=features,
        new_fingerprint=fingerprint,
        desc="Teacher scores",
    )
