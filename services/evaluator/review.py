"""Manual review (docs/evaluation.md): asking for one review, showing the item, and publishing.

Each saved review publishes a ``review-<system>`` run whose ``reviews.jsonl`` holds every review so
far, so the latest run is the whole record and quitting at any point loses nothing. The terminal
session is services/evaluator/stages/review.py; the UI's Review page publishes the same way.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from services.evaluator.settings import EvaluatorSettings
from shared import runs, stages
from shared.manifest import Manifest
from shared.runs import RunNotFound, RunWriter
from shared.schemas.eval import FAILURE_MODES, SEVERITIES, Review
from shared.store import ArtifactStore

log = logging.getLogger(__name__)

CORRECTNESS_KEYS = {"c": "correct", "p": "partially_correct", "i": "incorrect", "r": "refusal"}
SEVERITY_KEYS = {s[0]: s for s in SEVERITIES}


def previous_reviews(store: ArtifactStore, system: str, work_dir: Path) -> list[Review]:
    try:
        latest = runs.latest(store, f"review-{system}")
    except RunNotFound:
        return []
    path = runs.fetch(store, latest.output("reviews.jsonl"), Path(work_dir) / f"review-{system}.jsonl")
    return [Review.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def ask_review(item_id: str, system: str, reviewer: str, prompt: Callable = click.prompt) -> Review | None:
    """One review from the keyboard; ``None`` when the reviewer quits."""
    keys = "/".join(CORRECTNESS_KEYS) + "/q"
    answer = prompt(f"correctness [{keys}] (c correct, p partial, i incorrect, r refusal, q quit)",
                    type=click.Choice([*CORRECTNESS_KEYS, "q"]), show_choices=False)
    if answer == "q":
        return None
    correctness = CORRECTNESS_KEYS[answer]
    mode = severity = None
    if correctness in ("partially_correct", "incorrect"):
        menu = ", ".join(f"{i} {m}" for i, m in enumerate(FAILURE_MODES, 1))
        mode = FAILURE_MODES[prompt(f"failure mode ({menu})", type=click.IntRange(1, len(FAILURE_MODES))) - 1]
        severity = SEVERITY_KEYS[prompt("severity [l/m/h]", type=click.Choice(list(SEVERITY_KEYS)),
                                        show_choices=False)]
    notes = prompt("notes", default="", show_default=False)
    return Review(id=item_id, system=system, correctness=correctness, failure_mode=mode, severity=severity,
                  notes=notes, reviewer=reviewer, reviewed_at=datetime.now(UTC))


def show(console, item, response: str, score) -> None:
    console.rule(f"[bold]{item.id}[/] · {item.category}")
    console.print(f"[bold]Question:[/] {item.question}")
    console.print(f"[bold]Reference:[/] {item.reference_answer}")
    for fact in score.facts:
        mark = "[green]✓[/]" if fact.present else ("[yellow]✗ " + fact.rejected + "[/]" if fact.rejected else "[red]✗[/]")
        console.print(f"  {mark} {fact.fact}" + (f"  [dim]({fact.method})[/]" if fact.method else ""))
    console.print(f"[bold]Response:[/] {response}")
    if score.fabricated_entities:
        console.print(f"[bold red]Unknown names:[/] {', '.join(score.fabricated_entities)}")
    console.print(f"[dim]automatic accuracy {score.accuracy:.2f}, hedging cues {score.hedging['count']}[/]")


def publish(store: ArtifactStore, settings: EvaluatorSettings, system: str, score_run: Manifest,
            reviews: list[Review], sample: list[str], force: bool = False) -> Manifest:
    content = "".join(r.model_dump_json() + "\n" for r in reviews).encode()

    def body(writer: RunWriter, scratch: Path) -> None:
        writer.put_bytes("reviews.jsonl", content)
        writer.put_json("sample.json", sample)
        writer.metrics.update(reviewed=len(reviews), sample=len(sample))

    settings_dict = stages.fingerprint_settings(f"review-{system}", settings, system=system,
                                                reviews_sha256=hashlib.sha256(content).hexdigest())
    manifest, _ = runs.run_stage(store, f"review-{system}", settings_dict, runs.inputs_from(score_run, ["scores.json"]),
                                 body, work_dir=settings.work_dir, force=force)
    return manifest
