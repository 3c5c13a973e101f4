"""The Benchmark page: the latest scored evaluation of each system, filterable, with the report's charts.

Everything comes from published runs (``score-<system>``, the ``eval-<system>`` run it scored,
``report``), found through their manifests and fetched and verified like any stage input. A failure
mode is the reviewer's when the item was reviewed, otherwise the taxonomy's automatic proxy, and the
table says which.
Every rate on the page carries its 95 % bootstrap interval and n (``services/evaluator/stats.py``),
recomputed for the rows the filters leave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from services.evaluator import stats, taxonomy
from services.evaluator.inputs import load_responses
from services.evaluator.settings import EvaluatorSettings, for_run
from services.evaluator.stages import eval as asking
from services.evaluator.stages import score as scoring
from services.evaluator.ui import highlight
from shared import runs
from shared.errors import MissingArtifact
from shared.manifest import Manifest
from shared.runs import IntegrityError, RunNotFound
from shared.schemas.eval import FAILURE_MODES, SYSTEMS, BenchmarkItem, ItemScore, Review, ScoreFile
from shared.servers import ServerError
from shared.store import ArtifactStore, StoreError

ALL = "all"
COLUMNS = ["system", "id", "category", "accuracy", "facts", "fabricated", "hedged", "correctness",
           "failure_mode", "label", "question"]


FIGURES = {"accuracy": "mean accuracy", "fabricated": "fabricated names", "hedged": "hedged"}


def figures(evaluation: Evaluation, table: pd.DataFrame) -> dict[str, dict[str, stats.Interval]]:
    """Per system among ``table``'s rows: mean accuracy and the fabrication and hedging rates, with
    intervals, from the stored scores (the table's accuracy column is rounded for display)."""
    out = {}
    for system in dict.fromkeys(table.system):
        scores = [evaluation.answers[(system, i)][1] for i in table[table.system == system].id]
        values = {"accuracy": [s.accuracy for s in scores],
                  "fabricated": [float(bool(s.fabricated_entities)) for s in scores],
                  "hedged": [float(bool(s.hedging.get("hedged"))) for s in scores]}
        out[system] = {name: stats.bootstrap_mean(v, seed=evaluation.seed) for name, v in values.items()}
    return out


def figures_markdown(evaluation: Evaluation, table: pd.DataFrame) -> str:
    """One line per system: each rate as ``27.7 % [19.1, 36.9] (n=30)``."""
    lines = [f"**{system}**: " + " · ".join(f"{FIGURES[name]} {i.text()}" for name, i in f.items())
             for system, f in figures(evaluation, table).items()]
    return "  \n".join(lines) or "No rows."


@dataclass
class Evaluation:
    table: pd.DataFrame
    answers: dict[tuple[str, str], tuple[str, ItemScore]] = field(default_factory=dict)
    charts: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seed: int = stats.SEED

    def summary(self) -> str:
        """Every system's rates over all its rows (95 % bootstrap intervals), then what is missing."""
        text = figures_markdown(self, self.table) if len(self.table) else ""
        return "  \n".join([text] * bool(text) + [f"⚠ {n}" for n in self.notes]) or "⚠ Nothing loaded."


def scored_run(store: ArtifactStore, system: str, cache: Path) -> tuple[Manifest, ScoreFile, dict[str, str]]:
    """The latest ``score-<system>`` run, its scores and the responses of the ``eval-<system>`` run it
    scored (by item id): the run its manifest names, not the latest, which may be newer."""
    manifest = runs.latest(store, f"score-{system}")
    dest = cache / manifest.stage / manifest.run_id
    scores = ScoreFile.model_validate_json(
        runs.fetch(store, manifest.output("scores.json"), dest / "scores.json").read_text())
    answers = manifest.input("responses.jsonl", f"eval-{system}")
    responses = load_responses(runs.fetch(store, answers, dest / "responses.jsonl"))
    return manifest, scores, {r.id: r.response for r in responses}


def load(store: ArtifactStore, items: list[BenchmarkItem], reviews: dict[tuple[str, str], Review],
         cache: Path, seed: int = stats.SEED) -> Evaluation:
    """The latest ``score-<system>`` run of every system, and the latest report's charts."""
    questions = {i.id: i.question for i in items}
    rows, answers, notes = [], {}, []
    for system in SYSTEMS:
        try:
            _, scores, responses = scored_run(store, system, cache)
        except RunNotFound:
            notes.append(f"no score-{system} run yet (`als-lm eval run --system {system}`, then `als-lm eval score`)")
            continue
        for s in scores.items:
            review = reviews.get((system, s.id))
            if review:
                correctness, mode, label = review.correctness, review.failure_mode, "reviewed"
            else:
                (correctness, mode), label = taxonomy.proxy_label(s, responses.get(s.id), questions.get(s.id, "")), "auto"
            rows.append({
                "system": system, "id": s.id, "category": s.category, "accuracy": round(s.accuracy, 3),
                "facts": f"{sum(s.facts_present)}/{len(s.facts_present)}",
                "fabricated": ", ".join(s.fabricated_entities), "hedged": bool(s.hedging.get("hedged")),
                "correctness": correctness, "failure_mode": mode or "", "label": label,
                "question": questions.get(s.id, ""),
            })
            answers[(system, s.id)] = (responses.get(s.id, ""), s)
    charts: list[Path] = []
    try:
        report = runs.latest(store, "report")
        charts = [runs.fetch(store, ref, cache / report.stage / report.run_id / ref.name)
                  for ref in report.outputs_under("charts/") if ref.name.endswith(".png")]
    except RunNotFound:
        notes.append("no report run yet (`als-lm report`): no charts")
    return Evaluation(pd.DataFrame(rows, columns=COLUMNS), answers, charts, notes, seed)


def filter_table(table: pd.DataFrame, system: str, category: str, failure_mode: str) -> pd.DataFrame:
    out = table
    if system != ALL:
        out = out[out.system == system]
    if category != ALL:
        out = out[out.category == category]
    if failure_mode != ALL:
        out = out[out.failure_mode == ("" if failure_mode == "none" else failure_mode)]
    return out.reset_index(drop=True)


FAILURE_CHOICES = [ALL, "none", *FAILURE_MODES]


def detail(evaluation: Evaluation, system: str, item_id: str) -> tuple[str, str]:
    """The stored answer of one row, highlighted, and its key-fact table."""
    found = evaluation.answers.get((system, item_id))
    if found is None:
        return "", ""
    answer, scored = found
    return (highlight.answer_html(answer, scored.facts, scored.fabricated_entities),
            highlight.facts_html(scored.facts, scored.fabricated_entities))


def run_and_score(store: ArtifactStore, settings: EvaluatorSettings, system: str, limit: int | None) -> str:
    """What ``als-lm eval run`` then ``als-lm eval score`` do, from the page; a status line, never a raise.

    An identical earlier run is reused (skip-if-unchanged), so pressing the button twice asks nothing twice.
    """
    try:
        asked, ran = asking.run(store, for_run(settings, system=system, limit=limit))
        scored, _ = scoring.run(store, for_run(settings, system=system, eval_run=asked.run))
    except (RunNotFound, MissingArtifact, ServerError, StoreError, IntegrityError, ValueError,
            ConnectionError) as err:
        return f"⚠ Could not run the {system} benchmark: {err}"
    how = "asked and published" if ran else "unchanged since an identical run, reused"
    return f"{system}: {asked.run} {how}; scored as {scored.run}."
