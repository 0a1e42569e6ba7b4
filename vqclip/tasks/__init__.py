"""CLIP's other jobs: zero-shot classification, text/image search over a folder, scoring."""

from __future__ import annotations

from vqclip.tasks.classify import ClassifyResult, classify_images
from vqclip.tasks.clip import TaskClip, load_task_perceptor, task_clip
from vqclip.tasks.common import Skipped, find_images
from vqclip.tasks.score import ScoreResult, score_images
from vqclip.tasks.search import SearchQuery, SearchResult, check_search, rank_folder, search_folder

__all__ = [
    "ClassifyResult",
    "ScoreResult",
    "SearchQuery",
    "SearchResult",
    "Skipped",
    "TaskClip",
    "check_search",
    "classify_images",
    "find_images",
    "load_task_perceptor",
    "rank_folder",
    "score_images",
    "search_folder",
    "task_clip",
]
