"""Arguments from a YAML/JSON config file, a command line, or both (the command line wins).

The Hugging Face example scripts accept either a single JSON file or CLI flags. Researchers keep
settings in configs/ and override one or two per run, so we accept both at once:
``run_post_training.py configs/post_training/tiny.yaml --max_steps 10``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from ko_mrs.cli_errors import EXIT_USAGE, UsageError

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def config_to_argv(config: dict[str, Any]) -> list[str]:
    """Turn ``{"max_steps": 10, "train_files": [a, b]}`` into ``--max_steps 10 --train_files a b``.

    ``None`` and an empty list mean "not given" (argparse would refuse a list option with no values).
    """
    argv: list[str] = []
    for key, value in config.items():
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        argv.append(f"--{key}")
        if isinstance(value, (list, tuple)):
            argv.extend(str(v) for v in value)
        elif isinstance(value, dict):
            argv.append(json.dumps(value))
        else:
            argv.append(str(value))
    return argv


def parse_config_and_args(parser: HfArgumentParser, argv: list[str] | None = None) -> tuple:
    """Parse dataclasses from an optional leading config file followed by CLI overrides.

    Errors are one line: argparse's own (unknown choice, missing value) without its 150-line usage, and the
    ValueErrors of an unused argument or of TrainingArguments' checks as a :class:`UsageError`.
    """
    parser.error = lambda message: parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message} (see --help)\n")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        path = Path(argv.pop(0))
        try:
            text = path.read_text(encoding="utf-8-sig")
            config = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
            reason = " ".join(str(err).split())
            raise UsageError(f"{path}: not a valid {path.suffix[1:].upper()} config ({reason})") from None
        if not isinstance(config, dict):
            raise UsageError(f"{path}: the config must be a mapping of argument names to values")
        argv = config_to_argv(config) + argv
    try:
        return parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    except ValueError as err:
        raise UsageError(" ".join(str(err).split())) from None


def parse_overrides(text: str | None) -> dict[str, Any]:
    """``"hidden_dropout_prob=0,num_hidden_layers=2"`` -> a dict of model config values (YAML-typed)."""
    if not text:
        return {}
    overrides = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--config_overrides: expected key=value, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides
