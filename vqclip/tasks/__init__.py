"""CLIP's other jobs: zero-shot classification, text/image search over a folder, scoring."""

from __future__ import annotations

from vqclip.tasks.classify import ClassifyResult, classify_images
from vqclip.tasks.common import Skipped, find_images, load_task_perceptor
from vqclip.tasks.score import ScoreResult, score_images
from vqclip.tasks.search import SearchResult, search_folder

__all__ = [
    "ClassifyResult",
    "ScoreResult",
    "SearchResult",
    "Skipped",
    "classify_images",
    "find_images",
    "load_task_perceptor",
    "score_images",
    "search_folder",
]
