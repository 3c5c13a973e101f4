"""The extraction arm's part of the report (docs/extract.md): "Extractable or not", from the latest
``extract-measure`` run's summary."""

from __future__ import annotations

import json
from pathlib import Path

from services.evaluator.report.document import Section, Table
from services.evaluator.stats import Interval
from shared import runs
from shared.manifest import InputRef, Manifest
from shared.schemas.extract import HALVES
from shared.store import ArtifactStore

STAGE = "extract-measure"
TITLE = "Extractable or not: question-answer text for half of the facts"


def latest(store: ArtifactStore, main_train_run: str | None = None) -> tuple[Manifest, list[InputRef]] | None:
    """The latest extract-measure run (paired with ``main_train_run`` when the report's experiment names one: an
    arm measured against another experiment's model is not this one's) and the input the report reads from it,
    or None when there is none."""
    found = runs.runs(store, STAGE)
    if main_train_run is not None:
        found = [m for m in found if m.metrics.get("main_train_run") == main_train_run]
    if not found:
        return None
    return found[-1], runs.inputs_from(found[-1], ["summary.json"])


def load(store: ArtifactStore, found: tuple[Manifest, list[InputRef]], scratch: Path) -> dict:
    return json.loads(runs.fetch(store, found[1][0], scratch / "extract-summary.json").read_text(encoding="utf-8"))


def _text(data: dict, signed: bool = False) -> str:
    return Interval.model_validate(data).text(signed=signed)


def verdict(tests: list[dict]) -> str:
    """What the family says about the question, in one sentence."""
    qa_test = next(t for t in tests if t["measure"] == "qa" and t["half"] == "qa_test")
    diff = Interval.model_validate(qa_test["difference"])
    if qa_test["p_holm"] < 0.05:
        way = "more" if (diff.estimate or 0) > 0 else "fewer"
        return (f"Yes at this scale: the extraction model answers {way} of the held-out half's questions "
                f"({diff.text(signed=True)}, Holm-adjusted p = {qa_test['p_holm']:.3g}).")
    return (f"Not shown at this scale: on the held-out half the extraction model's strict QA accuracy differs from "
            f"the main model's by {diff.text(signed=True)} (Holm-adjusted p = {qa_test['p_holm']:.3g}).")


def section(summary: dict, run: str) -> Section:
    checkpoints, rates = summary["checkpoints"], summary["rates"]
    curve = Table(["checkpoint", "tokens seen", "measure", "half", "main model", "extraction model"], [])
    for checkpoint in checkpoints:
        for measure in ("probe", "qa"):
            for half in HALVES:
                curve.rows.append([checkpoint, f"{summary['tokens_seen'][checkpoint]:,}", measure, half,
                                   *(_text(rates[f"{m}|{checkpoint}|{measure}|{half}"]) for m in ("main", "extract"))])
    tests = Table(["test (last checkpoint)", "estimate", "test", "discordant (+ / −)", "p", "Holm-adjusted p"], [])
    for t in summary["tests"]:
        tests.rows.append([t["name"], _text(t["difference"], signed=True), t["test"],
                           f"{t['discordant'][0]} / {t['discordant'][1]}", f"{t['p']:.3g}", f"{t['p_holm']:.3g}"])
    spread = summary["seeds"]
    seeds = Table(["seed", "half", "main model", "extraction model", "extraction − main"], [])
    for s in spread["seeds"]:
        for half in HALVES:
            row = spread["rows"][f"{s}|{half}"]
            seeds.rows.append([str(s), half, _text(row["main"]), _text(row["extract"]),
                               _text(row["difference"], signed=True)])
    for half in HALVES:
        seeds.rows.append([f"mean over {len(spread['seeds'])} seeds", half, "", "",
                           _text(spread["rows"][f"mean|{half}"]["difference"], signed=True)])
    dropped = ", ".join(f"{n} {reason}" for reason, n in (summary.get("qa_dropped") or {}).items()) or "none"
    return Section(TITLE, [
        ("Allen-Zhu & Li (2023) find that a model pretrained on statements answers questions about them only when "
         "its pretraining data also holds question-answer text for part of the entities. A second model "
         f"({summary['extract_train_run']}) is trained exactly as the main one ({summary['main_train_run']}: same "
         "shards, tokenizer, preset, steps, checkpoints and seed) plus question-answer text for the benchmark items "
         "of one half (qa_exposed, a seeded hash of the item id), written from the training sentences that state "
         "their facts, never from the benchmark: the sentence with its value replaced by a wh-phrase, and the value "
         f"({summary['qa_pairs']} pairs; dropped: {dropped}). The other half (qa_test) is never asked about in "
         "training. Both models are probed (the true value ranks first among the candidates) and asked the "
         "benchmark questions as base models, k-shot, in process (strictly correct: every counted key fact "
         "supported, none contradicted), on the same items."),
        curve,
        ("Paired on the same items at the last kept checkpoint: extraction − main per measure and half "
         "(bootstrap interval of the difference, exact McNemar), and per half the difference of differences "
         "(per benchmark item, the QA gain minus the probe gain, the probe averaged over the item's probe items; "
         "exact sign test). Holm-adjusted over these "
         f"{summary['family']} tests, one family. Run {run}."),
        tests,
        (f"The probe at the last kept checkpoint ({spread['checkpoint']}) for every training seed of the experiment: "
         "each seed's extraction model trained as that seed's main model plus the same QA text. The mean over seeds "
         "averages extraction − main item by item over the seeds (bootstrap interval over items); QA above is the "
         "first seed's, the one exported and asked."),
        seeds,
        verdict(summary["tests"]),
    ])
