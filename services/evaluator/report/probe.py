"""The probe's part of the report (docs/probe.md): every probed system on the same items, paired, by form
and exposure bucket, with the chance and n-gram lines; and probe accuracy against training tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from services.evaluator.probe.score import curve, summarise
from services.evaluator.report import charts
from services.evaluator.report.document import Chart, Section, Table
from services.evaluator.stats import Interval
from shared import runs
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
    summary = summarise(data.items, data.results, seed=seed, baselines=(NGRAM, INIT),
                        systems=[s.name for s in data.systems if not s.ranks_only])
    summary["curve"] = curve(data.items, data.results, data.systems, seed=seed)
    rates = summary["systems"]
    groups = ["all", *PROBE_FORMS, *(f"bucket {b}" for b in EXPOSURE_BUCKETS if f"bucket {b}" in rates[INIT])]
    chance = rates[INIT]["all"]["chance"]
    table = Table(["system", "tokens seen", *groups, "MRR", "greedy exact match"], [])
    for system in (s for s in data.systems if s.name in rates):
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
    if len(summary["curve"]) > 1:
        blocks.extend(_curve(summary["curve"], rates, chance))
    return Section("Stored or not: the likelihood probe", blocks), summary


def stored(numbers: dict, probe: Manifest, trained_by: dict[str, str]) -> dict[str, str]:
    """The headline's "stored" cell for each system whose model the probe scored: the final checkpoint's
    accuracy@1 on memorisation stems against chance, when the probe's main train run is the one of the system's
    served model; a probe of another run says nothing about this one."""
    train = probe.metrics.get("train_run")
    if train is None:
        return {}
    form = numbers["systems"].get("scratch", {}).get("memorisation")
    if form is None:
        return {}
    rates = numbers["systems"]
    cell = (f"{_interval(form['accuracy']).text()} of memorisation stems (chance "
            f"{100 * rates[INIT]['all']['chance']:.1f} %)")
    return {system: cell for system, run in trained_by.items() if run == train}


def _spread(group: dict) -> Interval:
    """A group's accuracy at one point as the mean over seeds, its band the range over seeds."""
    return Interval(estimate=group["mean"], low=group["min"], high=group["max"], n=len(group["by_seed"]),
                    method="range over seeds")


def _curve(points: list[dict], rates: dict, chance: float) -> list[str | Table | Chart]:
    """Probe accuracy@1 against training tokens: a panel per form with a line per exposure bucket and a panel of
    all items, each the mean over seeds with the range over seeds as its band, the chance and n-gram lines; and
    the curve's table (each point's mean over seeds with its 95 % interval over items)."""
    seeds = sorted({s for p in points for s in p["seeds"]})
    panels: dict[str, dict[str, list[Interval]]] = {
        "all items accuracy@1": {group: [_spread(p["groups"][group]) for p in points]
                                 for group in ("all", *PROBE_FORMS) if group in points[0]["groups"]}}
    references: dict[str, dict[str, Interval]] = {}
    for form in PROBE_FORMS:
        series = {f"exposure {b}": [_spread(p["groups"][f"{form}/{b}"]) for p in points]
                  for b in EXPOSURE_BUCKETS if f"{form}/{b}" in points[0]["groups"]}
        if series:
            panels[f"{form} accuracy@1"] = series
    for label, group in (("all items accuracy@1", "all"), *((f"{f} accuracy@1", f) for f in PROBE_FORMS)):
        if label in panels:
            references[label] = {
                "chance": Interval(estimate=chance, n=rates[INIT][group]["n"], undefined_reason="a constant"),
                NGRAM: _interval(rates[NGRAM][group]["accuracy"])}
    png = charts.curves(f"Probe accuracy@1 against training tokens, {len(seeds)} seed(s)",
                        [p["tokens_seen"] for p in points], panels, "training tokens", references,
                        band=f"range over {len(seeds)} seed(s)")
    groups = ["all", *(f for f in PROBE_FORMS if f in points[0]["groups"])]
    table = Table(["step", "tokens seen", "seeds", *(f"{g} (mean over seeds, 95 % CI over items)" for g in groups),
                   "all: range over seeds"], [])
    for p in points:
        every = p["groups"]["all"]
        table.rows.append([f"{p['step']:,}", f"{p['tokens_seen']:,}", str(len(p["seeds"])),
                           *(_interval(p["groups"][g]["interval"]).text() for g in groups),
                           f"{100 * every['min']:.1f}-{100 * every['max']:.1f} %"])
    return [
        Chart("probe_curve", f"Probe accuracy@1 by exposure bucket against training tokens: the mean over "
              f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}), the range over seeds as a band, with the "
              f"chance and {NGRAM} lines", png),
        (f"The learning curve at {len(points)} points of training (the initialisation, the kept checkpoints and "
         "the probe snapshots), each seed scored on every item; accuracy by exposure bucket at every point is in "
         "report.json (probe.curve):"),
        table,
    ]
