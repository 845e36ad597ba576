"""ko-mrs: Korean multi-turn response selection with BERT-FP on the Hugging Face Trainer.

The library behind the run scripts (``run_post_training.py``, ``run_fine_tuning.py``); see docs/ARCHITECTURE.md.

    from ko_mrs import ResponseSelector
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ko_mrs.ranking import ResponseSelector
    from ko_mrs.session import SessionClassifier

__all__ = ["ResponseSelector", "SessionClassifier"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import ko_mrs.dialogue_data` (mrs-data) does not load torch and the models.
    if name == "ResponseSelector":
        from ko_mrs.ranking import ResponseSelector

        return ResponseSelector
    if name == "SessionClassifier":
        from ko_mrs.session import SessionClassifier

        return SessionClassifier
    raise AttributeError(f"module 'ko_mrs' has no attribute {name!r}")
