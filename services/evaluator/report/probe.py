"""The probe's part of the report (docs/probe.md): every probed system on the same items, paired, by form
and exposure bucket, with the chance and n-gram lines; probe accuracy against training tokens; and the
from-scratch model beside its exported GGUF and the RAG generator closed-book and with retrieval, paired on the
items they all scored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from services.evaluator.probe.score import agreement, curve, summarise
from services.evaluator.probe.score import rates as item_rates
from services.evaluator.report import charts
from services.evaluator.report.document import Chart, Section, Table
from services.evaluator.stats import Interval, compare, holm
from shared import runs
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound
from shared.schemas.experiment import EXPOSURE_BUCKETS
from shared.schemas.probe import PROBE_FORMS, ProbeItem, ProbeResult, ProbeSystem
from shared.store import ArtifactStore

STAGE = "probe-scratch"
LLAMA_STAGES = ("probe-gguf", "probe-rag")
"""The llama.cpp systems' probe runs: the report takes the latest of each that scored the same items (and, for
the GGUF, compared itself with the same probe-scratch run)."""
NGRAM = "ngram-2"
INIT = "scratch@init"
IN_PROCESS = ("scratch", "ngram")


@dataclass
class ProbeData:
    run: str
    items: list[ProbeItem]
    results: list[ProbeResult]
    systems: list[ProbeSystem]
    others: list[str]
    """The probe-gguf and probe-rag runs whose systems are in ``results`` too."""


def latest(store: ArtifactStore, probe_run: str | None = None) -> tuple[Manifest, list[InputRef]] | None:
    """The probe run (``probe_run``, the one the report's experiment names, else the latest) and the inputs the
    report reads from it and from the llama.cpp probe runs of the same items, or None when there is none."""
    try:
        manifest = runs.resolve(store, probe_run) if probe_run else runs.latest(store, STAGE)
    except RunNotFound:
        return None
    items = manifest.input("items.jsonl")
    refs = [*runs.inputs_from(manifest, ["results.jsonl", "systems.json"]), items]
    for stage in LLAMA_STAGES:
        same = [m for m in runs.runs(store, stage) if m.input("items.jsonl").sha256 == items.sha256
                and (stage != "probe-gguf" or m.upstream(STAGE) == manifest.run)]
        if same:
            refs += runs.inputs_from(same[-1], ["results.jsonl", "systems.json"])
    return manifest, refs


def load(store: ArtifactStore, found: tuple[Manifest, list[InputRef]], scratch: Path) -> ProbeData:
    manifest, refs = found
    paths = {(ref.run, ref.name): runs.fetch(store, ref, scratch / ref.run / ref.name) for ref in refs}

    def lines(run: str, name: str) -> list[str]:
        return [line for line in paths[run, name].read_text(encoding="utf-8").splitlines() if line]

    probe_runs = list(dict.fromkeys(run for run, name in paths if name == "results.jsonl"))
    items_run = next(run for run, name in paths if name == "items.jsonl")
    return ProbeData(
        manifest.run, [ProbeItem.model_validate_json(x) for x in lines(items_run, "items.jsonl")],
        [ProbeResult.model_validate_json(x) for run in probe_runs for x in lines(run, "results.jsonl")],
        [ProbeSystem.model_validate(s) for run in probe_runs
         for s in json.loads(paths[run, "systems.json"].read_text(encoding="utf-8"))],
        [run for run in probe_runs if run != manifest.run])


def _interval(data: dict) -> Interval:
    return Interval.model_validate(data)


def section(data: ProbeData, seed: int) -> tuple[Section, dict]:
    """The report section and its numbers for report.json."""
    in_process = [s for s in data.systems if s.kind in IN_PROCESS]
    names = {s.name for s in in_process}
    own = [r for r in data.results if r.system in names]
    summary = summarise(data.items, own, seed=seed, baselines=(NGRAM, INIT),
                        systems=[s.name for s in in_process if not s.ranks_only])
    summary["curve"] = curve(data.items, own, in_process, seed=seed)
    rates = summary["systems"]
    shared = paired_systems(data, seed)
    family = summary["comparisons"] + (shared["comparisons"] if shared else [])
    for c, adjusted in zip(family, holm([c["mcnemar"]["p_value"] for c in family])):
        c["mcnemar"]["p_holm"] = adjusted
    groups = ["all", *PROBE_FORMS, *(f"bucket {b}" for b in EXPOSURE_BUCKETS if f"bucket {b}" in rates[INIT])]
    chance = rates[INIT]["all"]["chance"]
    table = Table(["system", "tokens seen", *groups, "MRR", "greedy exact match"], [])
    for system in (s for s in in_process if s.name in rates):
        by = rates[system.name]
        table.rows.append([system.name, "-" if system.tokens_seen is None else f"{system.tokens_seen:,}",
                           *(_interval(by[g]["accuracy"]).text() for g in groups),
                           _interval(by["all"]["mrr"]).text(percent=False),
                           _interval(by["all"]["greedy_match"]).text()])
    table.rows.append(["chance 1/(k+1)", "-", *(f"{100 * chance:.1f} %" for _ in groups), "-", "-"])
    paired = _comparisons([c for c in summary["comparisons"] if c["b"] in (NGRAM, INIT)])
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
    if shared:
        summary["paired_systems"] = shared
        blocks += _shared_blocks(data, shared, chance)
    return Section("Stored or not: the likelihood probe", blocks), summary


def _comparisons(comparisons: list[dict]) -> Table:
    table = Table(["system", "minus", "items", "difference in accuracy@1", "exact McNemar"], [])
    for c in comparisons:
        table.rows.append([c["a"], c["b"], c["group"], _interval(c["difference"]).text(signed=True),
                           (f"{c['mcnemar']['a_only']} vs {c['mcnemar']['b_only']} (n={c['mcnemar']['n']}), "
                            f"p = {c['mcnemar']['p_value']:.3g}, Holm-adjusted {c['mcnemar']['p_holm']:.3g}")])
    return table


def _final(data: ProbeData) -> tuple[str, str | None]:
    """The from-scratch model's last point and its GGUF: the GGUF of model.pt, else of the latest checkpoint."""
    ggufs = {s.name.replace("gguf", "scratch", 1): s.name for s in data.systems if s.kind == "gguf"}
    if "scratch" in ggufs or not ggufs:
        return "scratch", ggufs.get("scratch")
    steps = {s.name: s.step or 0 for s in data.systems if s.kind == "scratch"}
    twin = max((name for name in ggufs if name in steps), key=steps.__getitem__)
    return twin, ggufs[twin]


def paired_systems(data: ProbeData, seed: int) -> dict | None:
    """The from-scratch model's last point, its GGUF, the RAG generator closed-book and with retrieval, the
    n-gram models and the initialisation, on the items every one of them scored (the RAG probe may score a
    sample); and the comparisons that answer the section's question, paired on those items."""
    if not data.others:
        return None
    scratch, gguf = _final(data)
    present = {r.system for r in data.results}
    order = [s for s in (scratch, gguf, "closed_book", "rag", "ngram-1", NGRAM, INIT) if s in present]
    by_system = {name: {r.item: r for r in data.results if r.system == name} for name in order}
    common = set.intersection(*(set(rs) for rs in by_system.values()))
    items = {i.id: i for i in data.items if i.id in common}
    rates = {}
    for name, rs in by_system.items():
        chosen = [rs[i] for i in sorted(common)]
        rates[name] = {group: item_rates([r for r in chosen if group == "all" or items[r.item].form == group],
                                         items, seed=seed) for group in ("all", *PROBE_FORMS)}
    pairs = [(gguf, scratch), (scratch, "closed_book"), (scratch, "rag"), ("rag", "closed_book"),
             ("closed_book", NGRAM), ("rag", NGRAM)]
    comparisons = []
    for a, b in pairs:
        if a not in by_system or b not in by_system:
            continue
        for group in ("all", *PROBE_FORMS):
            ids = [i for i in sorted(common) if group == "all" or items[i].form == group]
            ok = {name: {i: by_system[name][i].rank == 1 for i in ids} for name in (a, b)}
            comparisons.append({"group": group, **compare(a, {i: float(v) for i, v in ok[a].items()}, ok[a], b,
                                                          {i: float(v) for i, v in ok[b].items()}, ok[b],
                                                          seed=seed).model_dump()})
    by_name = {}
    for r in data.results:
        by_name.setdefault(r.system, []).append(r)
    agreements = {s.name: agreement(by_name[s.name], by_name[s.name.replace("gguf", "scratch", 1)], seed=seed)
                  for s in data.systems if s.kind == "gguf"}
    return {"systems": order, "items": len(common), "rates": rates, "comparisons": comparisons,
            "agreement": agreements}


def _shared_blocks(data: ProbeData, shared: dict, chance: float) -> list[str | Table]:
    rates = shared["rates"]
    table = Table(["system", *(f"accuracy@1, {g}" for g in ("all", *PROBE_FORMS)), "accuracy@1 per character",
                   "MRR"], [])
    for name in shared["systems"]:
        by = rates[name]
        table.rows.append([name, *(_interval(by[g]["accuracy"]).text() for g in ("all", *PROBE_FORMS)),
                           _interval(by["all"]["accuracy_norm"]).text(), _interval(by["all"]["mrr"]).text(percent=False)])
    table.rows.append(["chance 1/(k+1)", *(f"{100 * chance:.1f} %" for _ in range(3)), "-", "-"])
    kinds = {s.kind for s in data.systems if s.name in shared["systems"]}
    described = [text for kind, text in (
        ("scratch", "the from-scratch model's last point in process"),
        ("gguf", ("its exported GGUF through llama.cpp, which reads the stem as the model in process does, so the "
                 "two differ only by the export and llama.cpp")),
        ("closed_book", "the RAG generator given the stem alone (closed_book)"),
        ("rag", "the RAG generator after the chunks retrieval finds for the stem (rag)"),
        ("ngram", "the n-gram models and the random initialisation")) if kind in kinds]
    return [
        (f"Every system on the same {shared['items']} items (those all of them scored; probe runs "
         f"{', '.join([data.run, *data.others])}): {'; '.join(described)}."),
        table,
        "Paired on these items (in the same Holm family as the tests above):",
        _comparisons(shared["comparisons"]),
        *([("Each exported checkpoint against the same checkpoint in process, on every item: how often the true "
            "value gets the same rank and the same candidate comes first, the difference in accuracy@1 (an "
            "interval, not a test), and the largest difference in any candidate's log-likelihood:"),
           Table(["GGUF", "in process", "items", "same rank", "same first candidate",
                  "accuracy@1 difference (GGUF − in process)", "largest Δ log-likelihood (absolute)"],
                 [[name, name.replace("gguf", "scratch", 1), str(a["n"]), f"{100 * a['same_rank']:.1f} %",
                   f"{100 * a['same_top']:.1f} %", _interval(a["accuracy_difference"]["difference"]).text(signed=True),
                   f"{a['max_abs_loglikelihood_difference']:.2g}"] for name, a in shared["agreement"].items()])]
          if shared["agreement"] else []),
    ]


def stored(numbers: dict, probe: Manifest, trained_by: dict[str, str]) -> dict[str, str]:
    """The headline's "stored" cell for each system whose model the probe scored: the final checkpoint's
    accuracy@1 on memorisation stems against chance, when the probe's main train run is the one of the system's
    served model; a probe of another run says nothing about this one. The RAG generator's, closed-book and with
    retrieval, on the items every probed system scored, when the store holds its probe run."""
    chance = f"chance {100 * numbers['systems'][INIT]['all']['chance']:.1f} %"
    shared = numbers.get("paired_systems", {"rates": {}})
    cells = {system: (f"{_interval(shared['rates'][system]['memorisation']['accuracy']).text()} of memorisation "
                      f"stems ({chance}; the {shared['items']} items every probed system scored)")
             for system in ("closed_book", "rag") if system in shared["rates"]}
    train = probe.metrics.get("train_run")
    if train is None:
        return cells
    form = numbers["systems"].get("scratch", {}).get("memorisation")
    if form is None:
        return cells
    cell = f"{_interval(form['accuracy']).text()} of memorisation stems ({chance})"
    return cells | {system: cell for system, run in trained_by.items() if run == train}


def finding(numbers: dict) -> str | None:
    """The headline's paragraph on what the from-scratch model stores, from the probe's numbers: the final model
    against the bigram model on each form (paired, Holm-adjusted), the curve's ends over seeds, and the final
    model by exposure bucket; None when the probe lacks the final model or the bigram baseline."""
    systems = numbers["systems"]
    if "scratch" not in systems or "ngram-2" not in systems or not numbers.get("curve"):
        return None
    final, bigram = systems["scratch"], systems["ngram-2"]
    tests = {(c["a"], c["b"], c["group"]): c for c in numbers["comparisons"]}
    forms = []
    for form, words in (("memorisation", "stems cut from training sentences (memorisation)"),
                        ("generalisation", "the same facts in other words (generalisation)")):
        test = tests.get(("scratch", "ngram-2", form))
        against = (f"; final model − bigram {_interval(test['difference']).text(signed=True)}, Holm-adjusted "
                   f"McNemar p {test['mcnemar']['p_holm']:.3g}" if test else "")
        forms.append(f"{_interval(final[form]['accuracy']).text()} of {words} (bigram model of the training split "
                     f"{_interval(bigram[form]['accuracy']).text()}{against})")
    first, last = numbers["curve"][0], numbers["curve"][-1]
    seeds = ", ".join(str(s) for s in last["seeds"])
    buckets = "; ".join(f"{bucket} {_interval(final[f'bucket {bucket}']['accuracy']).text()}"
                        for bucket in EXPOSURE_BUCKETS if f"bucket {bucket}" in final)
    chance = 100 * systems[INIT]["all"]["chance"] if INIT in systems else 100 * final["all"]["chance"]
    return (f"Stored or not (the likelihood probe, chance {chance:.1f} %): the main run's final from-scratch model "
            f"ranks the true value first on {forms[0]}, and on {forms[1]}. Over training, the mean over seeds ({seeds}) goes "
            f"from {100 * first['groups']['all']['mean']:.1f} % of all items at initialisation to "
            f"{100 * last['groups']['all']['mean']:.1f} % (seeds {100 * last['groups']['all']['min']:.1f}-"
            f"{100 * last['groups']['all']['max']:.1f} %) after {last['tokens_seen']:,} tokens. By exposure (documents "
            f"where the item's subject and value co-occur), the final model: {buckets}.")


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
