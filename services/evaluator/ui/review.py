"""The Review page: the §8.3 taxonomy applied by hand, one sampled response at a time.

The same sample, store records and publishing as ``als-lm eval review`` (``services.evaluator.review``,
whose terminal session is ``services/evaluator/stages/review.py``):
every saved review publishes a ``review-<system>`` run holding all reviews so far, so closing the
page loses nothing and the next visit (or the terminal) resumes after the last saved one. A save
first rereads the latest run, so a review saved meanwhile from elsewhere is kept, not overwritten.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import gradio as gr
from pydantic import ValidationError

from services.evaluator import review as terminal
from services.evaluator.taxonomy import review_sample
from services.evaluator.ui import highlight
from services.evaluator.ui.benchmark import scored_run
from services.evaluator.ui.settings import UISettings
from shared.errors import MissingArtifact
from shared.manifest import Manifest
from shared.runs import RunNotFound
from shared.schemas.eval import (
    CORRECTNESS,
    FAILURE_MODES,
    SEVERITIES,
    SYSTEMS,
    BenchmarkItem,
    ItemScore,
    Review,
)
from shared.store import ArtifactStore


@dataclass
class Session:
    system: str
    score_run: Manifest
    sample: list[str]
    scores: dict[str, ItemScore]
    responses: dict[str, str]
    done: dict[str, Review] = field(default_factory=dict)

    @property
    def current(self) -> str | None:
        return next((i for i in self.sample if i not in self.done), None)

    def progress(self) -> str:
        n = sum(i in self.done for i in self.sample)
        return f"**{self.system}**: {n} of {len(self.sample)} sampled responses reviewed"


def work_dir(settings: UISettings) -> Path:
    return Path(settings.work_dir) / "ui" / "review"


def start(store: ArtifactStore, settings: UISettings, system: str) -> Session:
    """The system's review sample with the reviews saved so far (``RunNotFound`` before scoring)."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    score_run, scores, responses = scored_run(store, system, work_dir(settings))
    by_id = {s.id: s for s in scores.items}
    sample = review_sample(list(by_id), settings.eval.review_sample_size, settings.seed)
    done = {r.id: r for r in terminal.previous_reviews(store, system, work_dir(settings) / system)}
    return Session(system, score_run, sample, by_id, responses, done)


def save(store: ArtifactStore, settings: UISettings, session: Session, correctness: str | None,
         failure_mode: str | None, severity: str | None, notes: str, reviewer: str) -> Session:
    """Record the review of the current item and publish; ``ValueError`` when the labels do not fit."""
    item_id = session.current
    if item_id is None:
        raise ValueError("every sampled response is reviewed already")
    if not correctness:
        raise ValueError("choose a correctness label first")
    wrong = correctness in ("partially_correct", "incorrect")
    try:
        new = Review(id=item_id, system=session.system, correctness=correctness,
                     failure_mode=(failure_mode or None) if wrong else None,
                     severity=(severity or None) if wrong else None,
                     notes=(notes or "").strip(), reviewer=(reviewer or "").strip(),
                     reviewed_at=datetime.now(UTC))
    except ValidationError as err:
        raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())) from None
    latest = {r.id: r for r in terminal.previous_reviews(store, session.system, work_dir(settings) / session.system)}
    session.done = {**session.done, **latest, item_id: new}
    terminal.publish(store, settings, session.system, session.score_run, list(session.done.values()), session.sample)
    return session


def view(session: Session | None, items: dict[str, BenchmarkItem]) -> tuple[str, str, str, str]:
    """(progress, question and reference, highlighted response, key-fact table) of the current item."""
    if session is None:
        return "", "", "", ""
    item_id = session.current
    if item_id is None:
        return session.progress() + " — all done.", "", "", ""
    item, scored = items[item_id], session.scores[item_id]
    position = session.sample.index(item_id) + 1
    head = (f"**{item.id}** · {item.category} · item {position} of {len(session.sample)}\n\n"
            f"**Question:** {html.escape(item.question)}\n\n**Reference:** {html.escape(item.reference_answer)}")
    answer = session.responses.get(item_id, "")
    return (session.progress(), head, highlight.answer_html(answer, scored.facts, scored.fabricated_entities),
            highlight.facts_html(scored.facts, scored.fabricated_entities))


def all_reviews(store: ArtifactStore, settings: UISettings) -> dict[tuple[str, str], Review]:
    """Every saved review, by (system, item id), for the Benchmark page's failure modes."""
    out = {}
    for system in SYSTEMS:
        for r in terminal.previous_reviews(store, system, work_dir(settings) / system):
            out[(system, r.id)] = r
    return out


def page(settings: UISettings, store: ArtifactStore, items: list[BenchmarkItem]) -> None:
    """The page's components and events, inside the caller's ``gr.Tab``."""
    by_id = {i.id: i for i in items}
    session = gr.State()
    with gr.Row():
        system = gr.Radio(list(SYSTEMS), value=SYSTEMS[0], label="System to review", elem_id="review-system")
        reviewer = gr.Textbox(label="Reviewer", placeholder="your name or initials", elem_id="review-reviewer")
        begin = gr.Button("Start / resume", variant="primary", elem_id="review-start")
    progress = gr.Markdown(elem_id="review-progress")
    status = gr.Markdown(elem_id="review-status")
    head = gr.Markdown()
    with gr.Row():
        answer = gr.HTML(elem_id="review-answer")
        facts = gr.HTML()
    with gr.Row():
        correctness = gr.Radio(list(CORRECTNESS), label="Correctness", elem_id="review-correctness")
        mode = gr.Dropdown(["", *FAILURE_MODES], value="", label="Failure mode (if not correct)")
        severity = gr.Radio(list(SEVERITIES), label="Severity (if not correct)")
    notes = gr.Textbox(label="Notes", lines=2)
    save_btn = gr.Button("Save and next", elem_id="review-save")
    shown = [progress, head, answer, facts]

    def on_start(system_):
        try:
            s = start(store, settings, system_)
        except (RunNotFound, MissingArtifact, ValueError) as err:
            return None, *view(None, by_id), f"⚠ {err}"
        return s, *view(s, by_id), ""

    def on_save(s, correctness_, mode_, severity_, notes_, reviewer_):
        if s is None:
            return s, *view(None, by_id), "⚠ Press “Start / resume” first.", correctness_, notes_
        try:
            s = save(store, settings, s, correctness_, mode_, severity_, notes_, reviewer_)
        except ValueError as err:
            return s, *view(s, by_id), f"⚠ {err}", correctness_, notes_
        return s, *view(s, by_id), "Saved.", None, ""

    begin.click(on_start, system, [session, *shown, status], api_name=False)
    save_btn.click(on_save, [session, correctness, mode, severity, notes, reviewer],
                   [session, *shown, status, correctness, notes], api_name=False)
