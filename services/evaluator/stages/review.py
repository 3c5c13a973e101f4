"""The ``review-<system>`` stages (``als-lm eval review``): a person reviews a reproducible random
sample of the scored responses in the terminal, one at a time, and each saved review publishes a run
holding every review so far; the next session starts after the last reviewed item of the sample."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from services.evaluator.inputs import load_benchmark, load_responses
from services.evaluator.review import ask_review, previous_reviews, publish, show
from services.evaluator.settings import EvaluatorSettings, chosen_system
from services.evaluator.taxonomy import review_sample
from shared import runs
from shared.log import console as terminal
from shared.manifest import Manifest
from shared.runs import RunNotFound
from shared.schemas.eval import ScoreFile
from shared.store import ArtifactStore


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False, console=terminal,
        prompt: Callable = click.prompt) -> tuple[Manifest, bool]:
    """Review the unreviewed part of the sample; the latest review run and whether this session saved
    a review. ``console`` and ``prompt`` are the terminal's unless a caller (a test) gives its own."""
    system = chosen_system(settings)
    work = Path(settings.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    score_run = runs.latest(store, f"score-{system}")
    scores = ScoreFile.model_validate_json(
        runs.fetch(store, score_run.output("scores.json"), work / f"review-{system}-scores.json").read_text()
    )
    responses = {r.id: r.response for r in load_responses(
        runs.fetch(store, score_run.input("responses.jsonl"), work / f"review-{system}-responses.jsonl"))}
    items = {i.id: i for i in load_benchmark(settings.eval.benchmark)}
    by_id = {s.id: s for s in scores.items}
    sample = review_sample(list(by_id), settings.eval.review_sample_size, settings.seed)
    done = previous_reviews(store, system, work)
    reviewed = {r.id for r in done}
    todo = [i for i in sample if i not in reviewed]
    console.print(f"{system}: {len(sample) - len(todo)} of {len(sample)} sampled responses reviewed; "
                  f"{len(todo)} to go (q quits, progress is saved after each review)")
    manifest = None
    for position, item_id in enumerate(todo, len(sample) - len(todo) + 1):
        console.print(f"[dim]{position}/{len(sample)}[/]")
        show(console, items[item_id], responses[item_id], by_id[item_id])
        review = ask_review(item_id, system, settings.eval.reviewer, prompt)
        if review is None:
            break
        done.append(review)
        manifest = publish(store, settings, system, score_run, done, sample, force)
    if manifest is not None:
        return manifest, True
    try:
        return runs.latest(store, f"review-{system}"), False
    except RunNotFound:
        raise RunNotFound(f"review-{system}: no review saved yet, so nothing is published") from None
