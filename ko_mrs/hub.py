"""Hugging Face Hub integration: model cards, resuming from a Hub checkpoint, and pushes that fail loudly.

Trainer already pushes (``push_to_hub``, ``hub_model_id``, ``hub_strategy``, ``hub_private_repo``,
``hub_token``); this module adds what it lacks for ko-mrs:

* :func:`build_model_card` fills the template ``model_card.md`` with ``ModelCard.from_template``: stage, base
  model, data, hyperparameters, ``model-index`` results, usage snippets, limits and the BERT-FP citation;
* :func:`download_last_checkpoint` fetches a repo's ``last-checkpoint/`` so that ``--resume_from_hub``
  continues a run elsewhere (Trainer's ``resume_from_checkpoint`` takes only a local path);
* :class:`PushFailureReporter` reports a failed background checkpoint push instead of dropping it: training
  goes on, the local checkpoint stays intact, and the next save pushes again (with Trainer's default
  ``hub_always_push=False``, saves made while the failed push is still retrying are not pushed). A
  ``save_model()`` call does not push by itself: :func:`push_final` publishes the run, or exits saying how.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData, snapshot_download
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ko_mrs.checkpoints import require_complete
from ko_mrs.cli_errors import UsageError, first_line
from ko_mrs.preprocessing import DEFAULT_MAX_LENGTH

logger = logging.getLogger(__name__)

CHECKPOINT_FOLDER = "last-checkpoint"

CITATION = """@inproceedings{han-etal-2021-fine,
    title = "Fine-grained Post-training for Improving Retrieval-based Dialogue Systems",
    author = "Han, Janghoon and Hong, Taesuk and Kim, Byoungjae and Ko, Youngjoong and Seo, Jungyun",
    booktitle = "Proceedings of NAACL-HLT 2021",
    year = "2021",
    publisher = "Association for Computational Linguistics",
    pages = "1549--1558",
}"""

CARD_TEMPLATE = Path(__file__).with_name("model_card.md")
STAGE_DESCRIPTIONS = {
    "post-training": "BERT-FP fine-grained post-training ({objective} on short dialogue windows; URC is utterance "
    "relevance classification, NSP its 2-class form). It is an encoder to fine-tune for response selection, not a "
    "ranker by itself.",
    "session": "a same-session classifier: the BERT-FP utterance relevance head trained alone (ko-mrs `--task "
    "session`), judging whether an utterance belongs to a conversation.",
    "fine-tuning": "a response selector: a cross-encoder that scores how likely a candidate is the next utterance of "
    "a dialogue context (2-class softmax, label `next`).",
    "distillation": "a bi-encoder retriever: a context tower and a reply tower whose mean-pooled embeddings are "
    "compared by inner product, trained with in-batch negatives and a cross-encoder teacher's scores. It retrieves "
    "candidates from a large reply pool for a cross-encoder to rerank.",
}

METRIC_NAMES = {
    "r10@1": "R10@1",
    "r10@2": "R10@2",
    "r10@5": "R10@5",
    "r@1": "R@1",
    "r@2": "R@2",
    "r@5": "R@5",
    "mrr": "MRR",
    "map": "MAP",
    "p@1": "P@1",
}


@dataclass
class HubArguments:
    """What a model card and a Hub resume need beyond Trainer's own ``push_to_hub`` arguments."""

    resume_from_hub: str | None = field(
        default=None,
        metadata={"help": "Continue from this Hub repo's last-checkpoint/ (pushed with --hub_strategy checkpoint)."},
    )
    card_license: str = field(
        default="cc-by-sa-4.0", metadata={"help": "Licence in the model card (klue/bert-base's)."}
    )
    card_datasets: list[str] = field(default_factory=list, metadata={"help": "Dataset names for the model card."})
    card_eval_dataset: str | None = field(default=None, metadata={"help": "Name of the evaluation set in the card."})


class TokenFreeArguments:
    """TrainingArguments mixin: ``hub_token`` is left out whenever the arguments are pickled.

    Trainer ``torch.save``s its arguments into ``training_args.bin`` of the output folder and of every
    checkpoint, and pushes both; a token there would let anyone who reads the repo write to the account.
    The in-memory arguments keep the token, so the pushes still authenticate with it.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["hub_token"] = None
        return state


def download_last_checkpoint(repo_id: str, local_dir: str | Path, *, token: str | None = None) -> str:
    """Download ``last-checkpoint/`` of ``repo_id`` and return its local path, for ``resume_from_checkpoint``.

    The Hub being unreachable, a refused token or an incomplete checkpoint is a :class:`UsageError`.
    """
    try:
        snapshot_download(repo_id, allow_patterns=[f"{CHECKPOINT_FOLDER}/*"], local_dir=str(local_dir), token=token)
    except Exception as error:  # noqa: BLE001 - transport, auth and missing-repo errors all end the same way
        raise UsageError(
            f"--resume_from_hub {repo_id}: downloading {CHECKPOINT_FOLDER}/ failed ({type(error).__name__}: "
            f"{first_line(error)}); check the repo id, your network and your token (HF_TOKEN or `hf auth login`)"
        ) from error
    path = Path(local_dir) / CHECKPOINT_FOLDER
    if not (path / "trainer_state.json").is_file():
        raise UsageError(
            f"--resume_from_hub {repo_id}: the repo has no {CHECKPOINT_FOLDER}/ with a trainer_state.json; push one "
            "with --push_to_hub --hub_strategy checkpoint"
        )
    return require_complete(path, f"--resume_from_hub {repo_id}:")


def repository_url() -> str | None:
    """The project's repository, from the installed package's metadata (``[project.urls]`` in pyproject.toml)."""
    try:
        urls = metadata("ko-mrs").get_all("Project-URL") or []
    except PackageNotFoundError:
        return None
    links = dict(entry.split(", ", 1) for entry in urls if ", " in entry)
    return links.get("Repository")


def card_results(metrics: dict[str, float]) -> dict[str, float]:
    """The numbers a ranking card reports: test results when the run has some, else validation results.

    Keys lose their stage prefix (``test_r10@1`` -> ``r10@1``), as the model-index names them.
    """
    prefix = "test_" if any(key.startswith("test_r") for key in metrics) else "eval_"
    return {key.removeprefix(prefix): value for key, value in metrics.items() if key.startswith(prefix)}


def build_model_card(
    *,
    stage: str,
    repo_id: str,
    base_model: str,
    args: TrainingArguments,
    settings: dict[str, Any],
    hub_args: HubArguments,
    eval_results: dict[str, float] | None = None,
    health: dict[str, Any] | None = None,
    adversarial_results: dict[str, float] | None = None,
    onnx: bool = False,
) -> ModelCard:
    """A model card for a post-trained (``stage="post-training"``) or fine-tuned model, from ``model_card.md``.

    ``health`` (post-training): the collapse monitor's ``initial`` and ``final`` spreads and the run's
    ``metrics`` (URC accuracy against its prior), so a reader sees whether the encoder survived.
    ``adversarial_results``: ``AdversarialReport.metrics(prefix="")`` of the run's adversarial suites, which the
    model-index carries per perturbation type. ``settings["objective"]`` (post-training): what the heads were
    trained on, in the card's first paragraph. ``onnx``: the repo holds ``mrs-export``'s ``onnx/model.onnx`` and
    ``onnx/model_qint8.onnx``; the card says how to load them.
    """
    if stage not in STAGE_DESCRIPTIONS:
        raise ValueError(f"stage must be one of {', '.join(STAGE_DESCRIPTIONS)}, got {stage!r}")
    eval_name = hub_args.card_eval_dataset or "held-out groups"
    results = [
        EvalResult(
            task_type="text-ranking",
            task_name="Multi-turn response selection",
            dataset_type=eval_name,
            dataset_name=eval_name,
            metric_type=key,
            metric_name=METRIC_NAMES[key],
            metric_value=round(float(value), 4),
        )
        for key, value in (eval_results or {}).items()
        if key in METRIC_NAMES
    ]
    adversarial = _adversarial_rows(adversarial_results)
    results += [
        EvalResult(
            task_type="text-ranking",
            task_name="Adversarial response selection (pairwise)",
            dataset_type="adversarial-suite",
            dataset_name="ko-mrs adversarial suite",
            metric_type="accuracy" if kind == "overall" else f"accuracy_{kind}",
            metric_name=f"pairwise accuracy ({kind})",
            metric_value=round(model_accuracy, 4),
        )
        for kind, model_accuracy, _ in adversarial
    ]
    data = ModelCardData(
        language="ko",
        license=hub_args.card_license,
        library_name="transformers",
        base_model=None if Path(base_model).exists() else base_model,
        datasets=hub_args.card_datasets or None,
        tags=["bert", "bert-fp", "response-selection", "dialogue", "korean", "ko-mrs", stage],
        pipeline_tag={"fine-tuning": "text-classification", "distillation": "sentence-similarity"}.get(
            stage, "feature-extraction"
        ),
        model_name=repo_id.split("/")[-1],
        eval_results=results or None,
    )
    hyperparameters = {
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "num_processes": args.world_size,
        "num_train_epochs": args.num_train_epochs,
        "max_steps": args.max_steps,
        "warmup_steps": args.warmup_steps,
        "weight_decay": args.weight_decay,
        "lr_scheduler_type": str(args.lr_scheduler_type),
        "seed": args.seed,
        "bf16": args.bf16,
        **settings,
    }
    return ModelCard.from_template(
        data,
        template_path=str(CARD_TEMPLATE),
        stage=stage,
        what=STAGE_DESCRIPTIONS[stage].format(objective=settings.get("objective", "MLM + URC (3-class)")),
        repo_id=repo_id,
        base_model_path=base_model,
        training_data=", ".join(hub_args.card_datasets) or "see the training command",
        repository_url=repository_url(),
        max_length=settings.get("max_seq_length", DEFAULT_MAX_LENGTH),
        eval_name=eval_name,
        results=results,
        health=_health_rows(health),
        adversarial=adversarial,
        session=_session_rows((health or {}).get("metrics") or {}),
        onnx=onnx,
        hyperparameters=hyperparameters,
        citation=CITATION,
    )


def _adversarial_rows(results: dict[str, float] | None) -> list[tuple[str, float, float]]:
    """(type, model accuracy, BM25 accuracy) per perturbation type, then overall, from ``AdversarialReport.metrics``."""
    if not results:
        return []
    kinds = [
        key.removesuffix("_accuracy")
        for key in sorted(results)
        if key.endswith("_accuracy") and not key.endswith("bm25_accuracy") and key != "accuracy"
    ]
    rows = [(kind, results[f"{kind}_accuracy"], results[f"{kind}_bm25_accuracy"]) for kind in kinds]
    return [*rows, ("overall", results["accuracy"], results["bm25_accuracy"])]


def _health_rows(health: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """The representation-health table's rows: (what, at the start, at the end); none without a start."""
    if not health or not health.get("initial"):
        return []
    initial, final, metrics = health["initial"], health.get("final") or {}, health.get("metrics") or {}

    def cell(values: dict, key: str) -> str:
        return f"{values[key]:.4f}" if key in values else "-"

    rows = [
        ("probe spread, mean-pooled", cell(initial, "probe_spread"), cell(final, "probe_spread")),
        ("probe spread, [CLS]", cell(initial, "probe_spread_cls"), cell(final, "probe_spread_cls")),
    ]
    for key, name in (("eval_urc_accuracy", "URC accuracy (held-out windows)"), ("eval_urc_prior", "URC class prior")):
        if key in metrics:
            rows.append((name, "-", f"{metrics[key]:.4f}"))
    return rows


def _session_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The held-out URC numbers the card's session section shows: accuracy per class and the same-session AUC."""
    # without class 2 the head is the 2-class ablation, whose class 1 is the next utterance
    same = "another utterance of the same dialogue" if "eval_urc_accuracy_class_2" in metrics else "the next one"
    names = {
        "eval_urc_accuracy_class_0": "accuracy, utterance of another dialogue",
        "eval_urc_accuracy_class_1": f"accuracy, {same}",
        "eval_urc_accuracy_class_2": "accuracy, the next utterance",
        "eval_same_session_auc": "same-session AUC (1 - P(another dialogue))",
    }
    return [(name, f"{metrics[key]:.4f}") for key, name in names.items() if key in metrics]


class HubPushMixin:
    """Trainer mixin: our model card, a start-up check of the Hub repo, and background pushes whose failures
    are reported (:class:`PushFailureReporter`).

    ``card_builder(repo_id)`` makes the card; it is called whenever the card is written (the end of a run, and
    Trainer's own ``push_to_hub``), so it reports the metrics known by then.
    """

    def __init__(self, *args, card_builder: Callable[[str], ModelCard] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.card_builder = card_builder
        self.add_callback(PushFailureReporter(self))

    @property
    def card_repo_id(self) -> str:
        """The repo the card names: the pushed one, the requested one, or the output folder's name."""
        return self.hub_model_id or self.args.hub_model_id or Path(self.args.output_dir).name

    def create_model_card(self, **kwargs) -> None:
        if self.card_builder is None or not self.is_world_process_zero():
            return
        self.card_builder(self.card_repo_id).save(Path(self.args.output_dir) / "README.md")

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        """Create the repo at start-up; an outage or a refused token stops the run in one line, before training."""
        try:
            super().init_hf_repo(token=token, private=private)
        except Exception as error:  # noqa: BLE001 - transport and auth errors all end the same way
            repo = self.args.hub_model_id or Path(self.args.output_dir).absolute().name
            raise UsageError(
                f"--push_to_hub: cannot create or reach the Hub repo {repo} ({type(error).__name__}: "
                f"{first_line(error)}); check your network and token (HF_TOKEN, `hf auth login`) or drop --push_to_hub"
            ) from error

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        # Trainer.save_model() also pushes (blocking, outside push_final) when push_to_hub is set: an outage
        # there would end the run with a raw connection error. The run scripts publish once, with push_final.
        super().save_model(output_dir, _internal_call=True)


class PushFailureReporter(TrainerCallback):
    """Log a warning when a background checkpoint push fails, instead of Trainer dropping the error.

    Trainer starts those pushes inside its checkpoint save and keeps their futures in ``trainer.push_in_progress``
    (a public attribute; no callback receives the futures themselves). ``on_save`` runs right after the save, so
    each new future gets a done-callback that reports its step and folder.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.seen: set[Future] = set()

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object) -> None:
        pending = getattr(self.trainer, "push_in_progress", None)
        folder = str(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        for job in pending.jobs if pending is not None else []:
            if job not in self.seen:
                self.seen.add(job)
                job.add_done_callback(lambda future, step=state.global_step: _report(future, step, folder))


def _report(future: Future, step: int, folder: str) -> None:
    error = future.exception()
    if error is not None:
        logger.warning(
            "Pushing the checkpoint of step %d to the Hub failed (%s: %s). Training goes on; the local checkpoint "
            "%s is intact and the next save pushes again.",
            step,
            type(error).__name__,
            error,
            folder,
        )


def push_final(trainer) -> None:
    """The end-of-training push (blocking); a failure exits with what to do, the local model intact."""
    try:
        trainer.push_to_hub(commit_message="End of training", blocking=True)
    except Exception as error:  # noqa: BLE001 - any transport or Hub error ends the same way
        raise UsageError(
            f"pushing {trainer.args.output_dir} to the Hub repo {trainer.hub_model_id} failed "
            f"({type(error).__name__}: {first_line(error)}). "
            f"The trained model is saved locally in {trainer.args.output_dir}; "
            f"push it later with `hf upload {trainer.hub_model_id} {trainer.args.output_dir}`."
        ) from error
