"""The offline tokenizer is the same on every run, so the demo gives the same numbers for the same seed."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

# Each run is its own process: `tokenizers` seeds its hash maps per process, which is where the order came from.
TRAIN = """
import hashlib, json, sys
from ko_mrs.tiny_model import train_wordpiece
texts = [json.loads(line)["utterances"] for line in open(sys.argv[1], encoding="utf-8")]
tokenizer = train_wordpiece((u for d in texts for u in d), vocab_size=3000)
print(hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest())
"""


def test_train_wordpiece_gives_the_same_vocabulary_in_every_process(tiny_setup) -> None:
    digests = {
        subprocess.run(
            [sys.executable, "-c", TRAIN, str(tiny_setup["train"])],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.strip()
        for _ in range(4)
    }
    assert len(digests) == 1 and len(next(iter(digests))) == 64
