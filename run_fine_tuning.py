"""Fine-tune a (post-trained) BERT as a response-selection cross-encoder and score it on fixed groups.

Built like transformers' ``run_glue.py``: dataclass arguments from a config file and/or the command
line, ``do_train``/``do_eval``/``do_predict``, last-checkpoint detection, metrics logged and saved.

The model is ``AutoModelForSequenceClassification`` with 2 labels and a softmax (``not_next``/``next``),
not a single sigmoid logit: the standard ``text-classification`` pipeline then returns meaningful
labels, and the "next" probability is ``softmax(logits)[:, 1]``.

    python run_fine_tuning.py configs/fine_tuning/tiny.yaml
    accelerate launch run_fine_tuning.py configs/fine_tuning/klue-bert-base.yaml
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    HfArgumentParser,
    set_seed,
)

from data_collators import ResponseSelectionCollator
from ko_mrs.adversarial import evaluate_adversarial, read_adversarial_files
from ko_mrs.backends import require
from ko_mrs.cli_errors import UsageError, cli_main
from ko_mrs.export import export_onnx
from ko_mrs.fine_tuning import (
    ID2LABEL,
    POOLINGS,
    FineTuningArguments,
    ResponseSelectionTrainer,
    ranking_metrics,
    train_evaluate_predict,
)
from ko_mrs.hub import HubArguments, build_model_card, card_results, push_final
from ko_mrs.negatives import HARD_NEGATIVE_TOKENIZERS
from ko_mrs.preprocessing import (
    DEFAULT_MAX_LENGTH,
    DialoguePool,
    add_eot_token,
)
from ko_mrs.ranking import ResponseSelector
from ko_mrs.selection_data import build_training_rows, group_rows, read_group_files
from ko_mrs.session_training import train_session
from ko_mrs.speakers import UtteranceFeatureArguments
from ko_mrs.training import (
    apply_config_overrides,
    detect_last_checkpoint,
    early_stopping,
    parse_args,
    setup_logging,
)
from modeling_mrs import BertForResponseSelection, BertForSpeakerAwareSelection

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="klue/bert-base",
        metadata={"help": "A post-trained checkpoint, or any BERT checkpoint (local path or Hub id)."},
    )
    tokenizer_name: str | None = field(default=None)
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Model config values, e.g. 'hidden_dropout_prob=0,attention_probs_dropout_prob=0'."},
    )
    pooling: str = field(
        default="cls",
        metadata={
            "help": "cls: BertForSequenceClassification on the pooled [CLS]; mean: BertForResponseSelection "
            "on the mean of the last hidden states.",
            "choices": POOLINGS,
        },
    )


@dataclass
class DataArguments:
    train_files: list[str] = field(default_factory=list, metadata={"help": "Training dialogues (JSONL or .txt)."})
    validation_groups: str | None = field(default=None, metadata={"help": "Fixed eval groups (JSONL or .txt)."})
    test_groups: str | None = field(default=None, metadata={"help": "Fixed test groups (JSONL or .txt)."})
    every_prefix: bool = field(default=True, metadata={"help": "Every context prefix becomes an example."})
    negatives_per_positive: int = field(
        default=3, metadata={"help": "Random negatives per context: a listwise group is 1 positive + this many."}
    )
    hard_negative_ratio: float = field(
        default=0.0,
        metadata={
            "help": "Share of negatives that are lexical hard negatives: utterances of other dialogues that BM25 ranks "
            "highest for the context (negatives.py); the rest are random."
        },
    )
    hard_negative_tokenizer: str = field(
        default="char_bigram",
        metadata={
            "help": "BM25 terms for mining: eojeols + character bigrams, or kiwi morphemes.",
            "choices": HARD_NEGATIVE_TOKENIZERS,
        },
    )
    hard_negative_pool_top_k: int = field(
        default=10, metadata={"help": "Hard negatives are drawn from this many best BM25 hits per context."}
    )
    adversarial_negative_ratio: float = field(
        default=0.0,
        metadata={
            "help": "Share of negatives that are rule-based perturbations of the context's own true reply (negation, "
            "tense, swaps, antonyms, question <-> statement, repetition, topic: ko_mrs/adversarial.py), generated "
            "once with Kiwi and cached; the rest are hard (--hard_negative_ratio) or random."
        },
    )
    max_turns: int | None = field(default=None, metadata={"help": "Keep at most this many latest context turns."})
    max_seq_length: int = field(default=DEFAULT_MAX_LENGTH)
    same_corpus_negatives: bool = field(default=True)
    skip_short: bool = field(default=False)
    max_train_samples: int | None = field(default=None)
    early_stopping_patience: int | None = field(default=None, metadata={"help": "Evaluations without gain."})
    bm25_baseline: bool = field(default=True, metadata={"help": "Also score BM25 on the same groups."})
    adversarial_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Adversarial suites (JSONL, `mrs-eval make`): after training, pairwise accuracy per perturbation "
            "type beside BM25, saved as adversarial_results.json and put in the model card's model-index."
        },
    )
    task: str = field(
        default="selection",
        metadata={
            "help": "selection: the response selector; session: the URC head alone as a same-session classifier "
            "(ko_mrs/session_training.py; uses train_files, validation_files, max_turns, max_seq_length).",
            "choices": ("selection", "session"),
        },
    )
    validation_files: list[str] = field(
        default_factory=list, metadata={"help": "--task session: held-out dialogues for --do_eval."}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.hard_negative_ratio <= 1.0:
            raise UsageError(f"--hard_negative_ratio must be within [0, 1], got {self.hard_negative_ratio}")
        if not 0.0 <= self.adversarial_negative_ratio <= 1.0 - self.hard_negative_ratio:
            raise UsageError(
                f"--adversarial_negative_ratio must be within [0, 1 - hard_negative_ratio], got "
                f"{self.adversarial_negative_ratio} beside --hard_negative_ratio {self.hard_negative_ratio}"
            )
        if self.hard_negative_pool_top_k < 1:
            raise UsageError(f"--hard_negative_pool_top_k must be at least 1, got {self.hard_negative_pool_top_k}")


def run(argv: list[str] | None = None) -> dict[str, float]:
    """Parse arguments, then train / evaluate / predict; returns the metrics."""
    parser = HfArgumentParser(
        (ModelArguments, DataArguments, FineTuningArguments, HubArguments, UtteranceFeatureArguments)
    )
    model_args, data_args, training_args, hub_args, feature_args = parse_args(parser, argv)
    if training_args.export_onnx:
        require("onnx")  # a missing ONNX Runtime stops the run now, not after training
    setup_logging(training_args)
    set_seed(training_args.seed)
    if data_args.task == "session":
        return train_session(model_args, data_args, training_args, hub_args)

    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path)
    add_eot_token(tokenizer)
    id2label = {0: "next"} if training_args.loss == "bce" else ID2LABEL  # bce: one logit, the log-odds of "next"
    config = AutoConfig.from_pretrained(
        model_args.model_name_or_path,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    features = feature_args.resolve(config)
    features.add_tokens(tokenizer)

    validation_groups, test_groups = read_group_files(data_args, training_args)
    # read before training, so a bad suite fails in seconds rather than after the run
    adversarial = read_adversarial_files(data_args.adversarial_files) if data_args.adversarial_files else None

    def collator(pool: DialoguePool) -> ResponseSelectionCollator:
        return ResponseSelectionCollator(
            tokenizer=tokenizer, pool=pool, max_length=data_args.max_seq_length, features=features
        )

    train_pairs = train_collator = None
    if training_args.do_train:
        with training_args.main_process_first(desc="reading and tokenising dialogues"):
            train_pairs, pool, dialogues = build_training_rows(
                data_args,
                tokenizer,
                seed=training_args.seed,
                listwise=training_args.loss == "listwise",
                adversarial_ratio=data_args.adversarial_negative_ratio,
            )
        logger.info("%d training pairs from %d dialogues", len(train_pairs), len(dialogues))
        train_collator = collator(pool)
    eval_pairs, eval_collator = group_rows(validation_groups, tokenizer, data_args.max_turns, collator)
    test_pairs, test_collator = group_rows(test_groups, tokenizer, data_args.max_turns, collator)

    model_class = BertForResponseSelection if model_args.pooling == "mean" else AutoModelForSequenceClassification
    features.to_config(config)  # recorded, so ranking lays pairs out as training did
    if features.embedding_inputs:  # speaker / turn embeddings: the class that adds them (zero at the start)
        model_class, config.mrs_pooling = BertForSpeakerAwareSelection, model_args.pooling
    apply_config_overrides(config, model_args.config_overrides)
    model = model_class.from_pretrained(model_args.model_name_or_path, config=config)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=8)
    # The post-training class's auto_map does not describe this model; keep the config plain BERT (save_pretrained
    # writes BertForResponseSelection's own auto_map for mean pooling).
    if hasattr(model.config, "auto_map"):
        del model.config.auto_map
    model.config.mrs_max_length = data_args.max_seq_length
    model.config.mrs_max_turns = data_args.max_turns

    metrics: dict[str, float] = {}
    adversarial_results: dict[str, float] = {}

    def card(repo_id: str):
        return build_model_card(
            stage="fine-tuning",
            repo_id=repo_id,
            base_model=model_args.model_name_or_path,
            args=training_args,
            settings={
                "every_prefix": data_args.every_prefix,
                "negatives_per_positive": data_args.negatives_per_positive,
                "hard_negative_ratio": data_args.hard_negative_ratio,
                "hard_negative_tokenizer": data_args.hard_negative_tokenizer,
                "adversarial_negative_ratio": data_args.adversarial_negative_ratio,
                "max_turns": data_args.max_turns,
                "max_seq_length": data_args.max_seq_length,
                "loss": training_args.loss,
                "pooling": model_args.pooling,
                "speaker_encoding": features.speaker_encoding,
                "turn_distance_encoding": features.turn_distance_encoding,
            },
            hub_args=hub_args,
            eval_results=card_results(metrics),
            adversarial_results=adversarial_results,
            onnx=training_args.export_onnx,
        )

    trainer = ResponseSelectionTrainer(
        model=model,
        args=training_args,
        train_dataset=train_pairs,
        eval_dataset=eval_pairs,
        data_collator=train_collator or eval_collator or test_collator,
        eval_collator=eval_collator,
        test_collator=test_collator,
        processing_class=tokenizer,
        compute_metrics=ranking_metrics,
        callbacks=early_stopping(data_args.early_stopping_patience),
        card_builder=card,
    )
    metrics.update(
        train_evaluate_predict(
            trainer,
            detect_last_checkpoint(training_args, hub_args) if training_args.do_train else None,
            train_samples=None if train_pairs is None else len(train_pairs),
            test_pairs=test_pairs,
            test_groups=test_groups,
            test_groups_path=data_args.test_groups,
            bm25_baseline=data_args.bm25_baseline,
            model_label="model",
        )
    )
    if adversarial is not None and trainer.is_world_process_zero():
        selector = ResponseSelector(
            trainer.model, tokenizer, max_length=data_args.max_seq_length, batch_size=training_args.eval_batch_size
        )
        report = evaluate_adversarial(adversarial, selector.score)
        adversarial_results.update(report.metrics(prefix=""))
        trainer.save_metrics("adversarial", adversarial_results, combined=False)
        logger.info("adversarial suites: %s\n%s", ", ".join(data_args.adversarial_files), report.table())
    if training_args.export_onnx and trainer.is_world_process_zero():
        export_onnx(training_args.output_dir, quantize="int8")  # before the card and the push, which include it
    trainer.create_model_card()  # the card beside the weights, pushed or not, with the final numbers
    if training_args.push_to_hub:
        push_final(trainer)
    return metrics


def main(argv: list[str] | None = None) -> int:
    return cli_main("run_fine_tuning.py", run, argv)


if __name__ == "__main__":
    sys.exit(main())
