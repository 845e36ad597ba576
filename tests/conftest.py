"""Test session set-up: offline, with every Hugging Face cache in a temporary folder.

The variables are set before transformers/datasets/huggingface_hub are imported, since they read
them at import time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

_CACHE = Path(tempfile.mkdtemp(prefix="ko-mrs-tests-"))
os.environ["HF_HOME"] = str(_CACHE / "hf")
os.environ["HF_DATASETS_CACHE"] = str(_CACHE / "datasets")
os.environ["HF_MODULES_CACHE"] = str(_CACHE / "modules")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_EVALUATE_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
SHARED_DATA = ROOT.parent / "shared" / "data"


TINY = {
    "tokenizer": {"vocab_size": 600, "min_frequency": 2, "lowercase": False},
    "model": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    },
    "seed": 0,
}


@pytest.fixture(scope="session")
def tiny_setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small demo corpus and a tiny BERT saved like klue/bert-base."""
    from ko_mrs.demo_corpus import write_demo_corpus
    from ko_mrs.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    files = write_demo_corpus(root / "data", n_dialogues=120, seed=1)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    model = build_tiny_model([files["train"]], config, root / "tiny-bert")
    return {"root": root, "model": model, **files}
