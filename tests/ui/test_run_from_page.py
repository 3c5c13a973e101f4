"""The Benchmark page can run an evaluation itself: ask, score, and show the new rows."""

from __future__ import annotations

import shutil

import pytest

from services.evaluator.inputs import load_benchmark
from services.evaluator.ui import benchmark, review
from shared.settings import StoreSettings
from shared.store import LocalStore

pytestmark = pytest.mark.slow


def test_run_and_score_publishes_and_the_table_shows_the_new_run(evaluation, tmp_path):
    settings, store = evaluation
    copy = tmp_path / "artifacts"  # the session's store stays as the browser tests expect it
    shutil.copytree(settings.store.root, copy)
    settings = settings.model_copy(update={"store": StoreSettings(backend="local", root=copy)})
    store = LocalStore(copy)

    status = benchmark.run_and_score(store, settings, "scratch", 3)
    assert status.startswith("scratch: eval-scratch/") and "asked and published" in status
    items = load_benchmark(settings.eval.benchmark)
    loaded = benchmark.load(store, items, review.all_reviews(store, settings), tmp_path / "cache")
    assert len(loaded.table[loaded.table.system == "scratch"]) == 3

    assert "unchanged since an identical run" in benchmark.run_and_score(store, settings, "scratch", 3)


def test_run_with_ollama_down_is_a_status_line(evaluation, tmp_path):
    settings, store = evaluation
    down = settings.model_copy(update={"ollama_host": "http://127.0.0.1:9"})
    status = benchmark.run_and_score(store, down, "scratch", 1)
    assert status.startswith("⚠ Could not run the scratch benchmark")
