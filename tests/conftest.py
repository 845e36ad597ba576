"""Test session set-up: offline, with every Hugging Face cache in a temporary folder.

The variables are set before transformers/datasets/huggingface_hub are imported, since they read
them at import time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

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
