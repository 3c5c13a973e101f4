"""The probe's part of the report (docs/probe.md): every probed system on the same items, paired, by form
and exposure bucket, with the chance and n-gram lines; and probe accuracy against training tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from services.evaluator.probe.score import summarise
from services.evaluator.report import charts
from services.evaluator.report.document import Chart, Section, Table
from services.evaluator.stats import Interval
from shared import runs
from shared.errors import MissingArtifact
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound
from shared.schemas.experiment import EXPOSURE_BUCKETS
from shared.schemas.probe import PROBE_FORMS, ProbeItem, ProbeResult, ProbeSystem
from shared.store import ArtifactStore

STAGE = "probe-scratch"
NGRAM = "ngram-2"
INIT = "scratch@init"


@dataclass
class ProbeData:
    run: str
    items: list[ProbeItem]
    results: list[ProbeResult]
    systems: list[ProbeSystem]


def latest(store: ArtifactStore) -> tuple[Manifest, list[InputRef]] | None:
    """The latest probe run and the inputs the report reads from it, or None when the store has none."""
    try:
        manifest = runs.latest(store, STAGE)
    except RunNotFound:
        return None
    return manifest, [*runs.inputs_from(manifest, ["results.jsonl", "systems.json"]), manifest.input("items.jsonl")]


def load(store: ArtifactStore, found: tuple[Manifest, list[InputRef]], scratch: Path) -> ProbeData:
    manifest, refs = found
    paths = {ref.name: runs.fetch(store, ref, scratch / ref.name) for ref in refs}

    def lines(name: str) -> list[str]:
        return [line for line in paths[name].read_text(encoding="utf-8").splitlines() if line]

    systems = [ProbeSystem.model_validate(s) for s in json.loads(paths["systems.json"].read_text(encoding="utf-8"))]
    return ProbeData(manifest.run, [ProbeItem.model_validate_json(x) for x in lines("items.jsonl")],
                     [ProbeResult.model_validate_json(x) for x in lines("results.jsonl")], systems)


def _interval(data: dict) -> Interval:
    return Interval.model_validate(data)


def section(data: ProbeData, seed: int) -> tuple[Section, dict]:
    """The report section and its numbers for report.json."""
    summary = summarise(data.items, data.results, seed=seed, baselines=(NGRAM, INIT))
    rates = summary["systems"]
    groups = ["all", *PROBE_FORMS, *(f"bucket {b}" for b in EXPOSURE_BUCKETS if f"bucket {b}" in rates[INIT])]
    chance = rates[INIT]["all"]["chance"]
    table = Table(["system", "tokens seen", *groups, "MRR", "greedy exact match"], [])
    for system in data.systems:
        by = rates[system.name]
        table.rows.append([system.name, "-" if system.tokens_seen is None else f"{system.tokens_seen:,}",
                           *(_interval(by[g]["accuracy"]).text() for g in groups),
                           _interval(by["all"]["mrr"]).text(percent=False),
                           _interval(by["all"]["greedy_match"]).text()])
    table.rows.append(["chance 1/(k+1)", "-", *(f"{100 * chance:.1f} %" for _ in groups), "-", "-"])
    paired = Table(["system", "minus", "items", "difference in accuracy@1", "exact McNemar"], [])
    for c in summary["comparisons"]:
        if c["b"] in (NGRAM, INIT):
            paired.rows.append([c["a"], c["b"], c["group"], _interval(c["difference"]).text(signed=True),
                                (f"{c['mcnemar']['a_only']} vs {c['mcnemar']['b_only']}, "
                                 f"p = {c['mcnemar']['p_value']:.3g}, Holm-adjusted {c['mcnemar']['p_holm']:.3g}")])
    unseen = sum(not i.in_train for i in data.items)
    blocks: list[str | Table | Chart] = [
        (f"Each key fact of the benchmark becomes a cloze item: the words before the fact in a training "
         f"sentence (memorisation) and in the reference answer or a validation sentence (generalisation), "
         f"then the true value and {len(data.items[0].candidates) - 1} distractors of the same type from the "
         f"corpus. A system answers by ranking the candidates by likelihood; accuracy@1 against the chance "
         f"level {100 * chance:.1f} % and a bigram model of the training tokens ({NGRAM}), which says what word "
         f"frequency alone gets right. {len(data.items)} items, {unseen} of them on facts no training "
         f"document states; exposure buckets count the training documents where the question's subject and "
         f"the fact co-occur. Probe run {data.run}; docs/probe.md says how the items are made."),
        table,
        ("Paired on the same items (bootstrap interval of the difference, exact McNemar on items; the p-values "
         "are Holm-adjusted over every paired test of this section, one family):"),
        paired,
    ]
    curve = _curve(data, rates, chance)
    if curve:
        blocks.append(curve)
    return Section("Stored or not: the likelihood probe", blocks), summary


def stored(numbers: dict, probe: Manifest, trained_by: dict[str, str]) -> dict[str, str]:
    """The headline's "stored" cell for each system whose model the probe scored: the final checkpoint's
    accuracy@1 on memorisation stems against chance, when the probe read the same train run as the system's
    served model; a probe of another run says nothing about this one."""
    try:
        train = probe.upstream("train")
    except MissingArtifact:
        return {}
    form = numbers["systems"].get("scratch", {}).get("memorisation")
    if form is None:
        return {}
    rates = numbers["systems"]
    cell = (f"{_interval(form['accuracy']).text()} of memorisation stems (chance "
            f"{100 * rates[INIT]['all']['chance']:.1f} %)")
    return {system: cell for system, run in trained_by.items() if run == train}


def _curve(data: ProbeData, rates: dict, chance: float) -> Chart | None:
    """Probe accuracy@1 against training tokens, a line per exposure bucket, a panel per form."""
    points = sorted((s for s in data.systems if s.kind == "scratch" and s.name != "scratch"
                     and s.tokens_seen is not None), key=lambda s: s.tokens_seen)
    if len(points) < 2:
        return None
    panels: dict[str, dict[str, list[Interval]]] = {}
    references: dict[str, dict[str, Interval]] = {}
    for form in PROBE_FORMS:
        series = {}
        for b in EXPOSURE_BUCKETS:
            key = f"{form}/{b}"
            if key in rates[points[0].name]:
                series[f"exposure {b}"] = [_interval(rates[p.name][key]["accuracy"]) for p in points]
        if series:
            panels[f"{form} accuracy@1"] = series
            references[f"{form} accuracy@1"] = {
                "chance": Interval(estimate=chance, n=rates[INIT][form]["n"], undefined_reason="a constant"),
                NGRAM: _interval(rates[NGRAM][form]["accuracy"])}
    png = charts.curves("Probe accuracy@1 against training tokens", [p.tokens_seen for p in points], panels,
                        "training tokens", references)
    return Chart("probe_curve", "Probe accuracy@1 by exposure bucket against training tokens, with the chance "
                 f"and {NGRAM} lines", png)
