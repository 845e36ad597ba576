"""Train a bi-encoder retriever: in-batch negatives plus distillation from a fine-tuned cross-encoder.

Built like the other run scripts: dataclass arguments from a config file and/or the command line,
``do_train``/``do_eval``/``do_predict``, last-checkpoint detection, metrics logged and saved, a model card. The
student (``ko_mrs.bi_encoder.BertBiEncoder``) starts from any BERT checkpoint, a post-trained one included; the
teacher is a model ``run_fine_tuning.py`` saved. ``--teacher_weight 0`` trains without a teacher.

    python run_distillation.py configs/distillation/tiny.yaml
    python run_distillation.py configs/distillation/tiny.yaml --teacher_weight 0 --output_dir runs/demo/student-0
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

from transformers import AutoTokenizer, HfArgumentParser, set_seed

from ko_mrs.bi_encoder import (
    DEFAULT_CONTEXT_LENGTH,
    DEFAULT_REPLY_LENGTH,
    SIMILARITIES,
    BertBiEncoder,
    BiEncoderCollator,
)
from ko_mrs.cli_errors import UsageError, cli_main
from ko_mrs.distillation import DistillationArguments, DistillationTrainer, add_teacher_scores
from ko_mrs.fine_tuning import ranking_metrics, train_evaluate_predict
from ko_mrs.hub import HubArguments, build_model_card, card_results, push_final
from ko_mrs.negatives import HARD_NEGATIVE_TOKENIZERS
from ko_mrs.preprocessing import DialoguePool, add_eot_token
from ko_mrs.selection_data import build_training_rows, group_rows, read_group_files
from ko_mrs.training import (
    apply_config_overrides,
    detect_last_checkpoint,
    early_stopping,
    parse_args,
    setup_logging,
)

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="klue/bert-base",
        metadata={"help": "The student's start: any BERT checkpoint, a post-trained one included."},
    )
    teacher_name_or_path: str | None = field(
        default=None, metadata={"help": "A fine-tuned cross-encoder (run_fine_tuning.py's output); needed above 0."}
    )
    tokenizer_name: str | None = field(default=None)
    config_overrides: str | None = field(default=None, metadata={"help": "Model config values, 'k=v,k=v'."})
    shared_towers: bool = field(default=True, metadata={"help": "One BERT for contexts and replies."})
    similarity: str = field(
        default="cosine", metadata={"help": "Score of a context and a reply.", "choices": SIMILARITIES}
    )


@dataclass
class DataArguments:
    train_files: list[str] = field(default_factory=list, metadata={"help": "Training dialogues (JSONL or .txt)."})
    validation_groups: str | None = field(default=None, metadata={"help": "Fixed eval groups (JSONL or .txt)."})
    test_groups: str | None = field(default=None, metadata={"help": "Fixed test groups (JSONL or .txt)."})
    every_prefix: bool = field(default=True, metadata={"help": "Every context prefix becomes an example."})
    negatives_per_positive: int = field(
        default=7, metadata={"help": "Negatives in each context's candidate list, which the teacher scores."}
    )
    hard_negative_ratio: float = field(
        default=0.5, metadata={"help": "Share of those negatives that are BM25 hard negatives (negatives.py)."}
    )
    hard_negative_tokenizer: str = field(default="char_bigram", metadata={"choices": HARD_NEGATIVE_TOKENIZERS})
    hard_negative_pool_top_k: int = field(default=10)
    max_turns: int | None = field(default=None, metadata={"help": "Keep at most this many latest context turns."})
    max_seq_length: int = field(default=DEFAULT_CONTEXT_LENGTH, metadata={"help": "Tokens of a context."})
    max_reply_length: int = field(default=DEFAULT_REPLY_LENGTH, metadata={"help": "Tokens of a reply."})
    same_corpus_negatives: bool = field(default=True)
    skip_short: bool = field(default=False)
    max_train_samples: int | None = field(default=None)
    teacher_batch_size: int = field(default=32, metadata={"help": "Candidate lists per teacher forward pass."})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "Evaluations without gain."})
    bm25_baseline: bool = field(default=True, metadata={"help": "Also score BM25 on the test groups."})

    def __post_init__(self) -> None:
        if not 0.0 <= self.hard_negative_ratio <= 1.0:
            raise UsageError(f"--hard_negative_ratio must be within [0, 1], got {self.hard_negative_ratio}")
        if self.negatives_per_positive < 1:
            raise UsageError(f"--negatives_per_positive must be at least 1, got {self.negatives_per_positive}")


def run(argv: list[str] | None = None) -> dict[str, float]:
    """Parse arguments, then train / evaluate / predict; returns the metrics."""
    parser = HfArgumentParser((ModelArguments, DataArguments, DistillationArguments, HubArguments))
    model_args, data_args, training_args, hub_args = parse_args(parser, argv)
    setup_logging(training_args)
    set_seed(training_args.seed)
    uses_teacher = training_args.do_train and training_args.teacher_weight > 0
    if uses_teacher and model_args.teacher_name_or_path is None:
        raise UsageError("--teacher_weight above 0 needs --teacher_name_or_path (or --teacher_weight 0)")
    validation_groups, test_groups = read_group_files(data_args, training_args)

    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path)
    add_eot_token(tokenizer)

    def collator(pool: DialoguePool) -> BiEncoderCollator:
        return BiEncoderCollator(tokenizer, pool, data_args.max_seq_length, data_args.max_reply_length)

    train_rows = train_collator = None
    if training_args.do_train:
        with training_args.main_process_first(desc="reading dialogues, candidate lists and teacher scores"):
            train_rows, pool, dialogues = build_training_rows(
                data_args, tokenizer, seed=training_args.seed, listwise=True
            )
            if uses_teacher:
                train_rows = add_teacher_scores(
                    train_rows,
                    dialogues,
                    model_args.teacher_name_or_path,
                    batch_size=data_args.teacher_batch_size,
                    device=str(training_args.device),
                )
        logger.info("%d candidate lists from %d dialogues", len(train_rows), len(dialogues))
        train_collator = collator(pool)
    eval_pairs, eval_collator = group_rows(validation_groups, tokenizer, data_args.max_turns, collator)
    test_pairs, test_collator = group_rows(test_groups, tokenizer, data_args.max_turns, collator)

    model = BertBiEncoder.from_pretrained(
        model_args.model_name_or_path, shared_towers=model_args.shared_towers, similarity=model_args.similarity
    )
    apply_config_overrides(model.config, model_args.config_overrides)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=8)
    model.config.mrs_max_length = data_args.max_seq_length
    model.config.mrs_reply_length = data_args.max_reply_length
    model.config.mrs_max_turns = data_args.max_turns
    scale = training_args.scale or (20.0 if model_args.similarity == "cosine" else 1.0)

    metrics: dict[str, float] = {}

    def card(repo_id: str):
        return build_model_card(
            stage="distillation",
            repo_id=repo_id,
            base_model=model_args.model_name_or_path,
            args=training_args,
            settings={
                "teacher": model_args.teacher_name_or_path if training_args.teacher_weight > 0 else None,
                "teacher_weight": training_args.teacher_weight,
                "distillation_loss": training_args.distillation_loss,
                "temperature": training_args.temperature,
                "scale": scale,
                "shared_towers": model_args.shared_towers,
                "similarity": model_args.similarity,
                "negatives_per_positive": data_args.negatives_per_positive,
                "hard_negative_ratio": data_args.hard_negative_ratio,
                "max_turns": data_args.max_turns,
                "max_seq_length": data_args.max_seq_length,
                "max_reply_length": data_args.max_reply_length,
            },
            hub_args=hub_args,
            eval_results=card_results(metrics),
        )

    trainer = DistillationTrainer(
        model=model,
        args=training_args,
        train_dataset=train_rows,
        eval_dataset=eval_pairs,
        data_collator=train_collator or eval_collator or test_collator,
        eval_collator=eval_collator,
        test_collator=test_collator,
        processing_class=tokenizer,
        compute_metrics=ranking_metrics,
        callbacks=early_stopping(data_args.early_stopping_patience),
        card_builder=card,
        scale=scale,
    )
    metrics.update(
        train_evaluate_predict(
            trainer,
            detect_last_checkpoint(training_args, hub_args) if training_args.do_train else None,
            train_samples=None if train_rows is None else len(train_rows),
            test_pairs=test_pairs,
            test_groups=test_groups,
            test_groups_path=data_args.test_groups,
            bm25_baseline=data_args.bm25_baseline,
            model_label="student",
            log_odds=False,
        )
    )
    trainer.create_model_card()
    if training_args.push_to_hub:
        push_final(trainer)
    return metrics


def main(argv: list[str] | None = None) -> int:
    return cli_main("run_distillation.py", run, argv)


if __name__ == "__main__":
    sys.exit(main())
