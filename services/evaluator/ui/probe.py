"""The Benchmark page's probe panel: a benchmark item's cloze probe items (docs/probe.md), each with its
candidates' log-likelihoods and ranks under every system a probe run scored.

A probe run is a run of any ``probe-*`` stage that publishes ``results.jsonl`` (``ProbeResult``) and
``systems.json`` (``ProbeSystem``): ``probe-scratch`` and whatever probe stages join it show up here
without a change to the page. Each run's items are those of the ``probe-items`` run it read, never the
latest one, which may be newer. Everything shown comes from the store and is escaped.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from services.evaluator.probe.score import rank
from services.evaluator.stages.probe import read_items
from shared import runs
from shared.errors import MissingArtifact
from shared.manifest import Manifest
from shared.runs import IntegrityError, RunNotFound
from shared.schemas.probe import PROBE_FORMS, ProbeItem, ProbeResult, ProbeSystem
from shared.store import ArtifactStore, StoreError

OUTPUTS = ("results.jsonl", "systems.json")
NO_PROBE = "no probe run in the store yet (`als-lm probe items`, then `als-lm probe run`): no probe candidates to show"


@dataclass
class ProbeRun:
    """What one probe run scored: its systems in order and each (item, system)'s result."""

    run: str
    items_run: str
    systems: list[str]
    results: dict[tuple[str, str], ProbeResult]
    train_run: str | None = None


@dataclass
class Probes:
    """The chosen probe runs and the items they scored (by ``probe-items`` run, then benchmark id)."""

    runs: list[ProbeRun] = field(default_factory=list)
    items: dict[str, dict[str, list[ProbeItem]]] = field(default_factory=dict)
    stored: int = 0
    """How many probe runs the store holds, chosen or not."""
    notes: list[str] = field(default_factory=list)


def probe_runs(store: ArtifactStore) -> list[Manifest]:
    """Every published run of a probe stage (one that publishes results.jsonl and systems.json), newest first."""
    found = [m for stage in runs.stages(store) if stage.startswith("probe-")
             for m in runs.runs(store, stage) if {o.name for o in m.outputs} >= set(OUTPUTS)]
    return sorted(found, key=lambda m: m.created, reverse=True)


def choices(store: ArtifactStore) -> tuple[list[tuple[str, str]], list[str]]:
    """(label, run) for the run picker, newest first, and the default choice: the latest run of each stage."""
    found = probe_runs(store)
    latest: dict[str, str] = {}
    for m in found:
        latest.setdefault(m.stage, m.run)
    labels = [(m.run + (f" (train run {m.metrics['train_run']})" if m.metrics.get("train_run") else ""), m.run)
              for m in found]
    return labels, list(latest.values())


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


def _check(results: Iterable[ProbeResult], items: dict[str, list[ProbeItem]], items_run: str) -> None:
    """Every result is of an item of ``items_run`` and has one likelihood per candidate."""
    candidates = {i.id: len(i.candidates) for by_benchmark in items.values() for i in by_benchmark}
    for r in results:
        if len(r.loglikelihoods) != candidates.get(r.item):
            raise ValueError(f"its result for {r.item} ({r.system}) does not match the items of {items_run}: "
                             f"{len(r.loglikelihoods)} likelihoods, {candidates.get(r.item, 'no such item, so no')} "
                             "candidates")


def load(store: ArtifactStore, chosen: list[str], cache: Path) -> Probes:
    """The chosen probe runs' results, systems and items, fetched and verified; a run that cannot be read
    is a note, not an error."""
    probes = Probes(stored=len(probe_runs(store)))
    for ref in chosen:
        try:
            manifest = runs.resolve(store, ref)
            dest = cache / manifest.stage / manifest.run_id
            items_ref = manifest.input("items.jsonl", "probe-items")
            if items_ref.run not in probes.items:
                by_benchmark: dict[str, list[ProbeItem]] = {}
                for item in read_items(runs.fetch(store, items_ref, cache / items_ref.run / items_ref.name)):
                    by_benchmark.setdefault(item.benchmark_id, []).append(item)
                probes.items[items_ref.run] = by_benchmark
            paths = {name: runs.fetch(store, manifest.output(name), dest / name) for name in OUTPUTS}
            systems = [ProbeSystem.model_validate(s).name
                       for s in json.loads(paths["systems.json"].read_text(encoding="utf-8"))]
            results = {(r.item, r.system): r for r in map(ProbeResult.model_validate_json,
                                                           _lines(paths["results.jsonl"]))}
            _check(results.values(), probes.items[items_ref.run], items_ref.run)
        except (RunNotFound, MissingArtifact, IntegrityError, StoreError, ValueError) as err:
            probes.notes.append(f"cannot read the probe run {ref}: {err}")
            continue
        probes.runs.append(ProbeRun(manifest.run, items_ref.run, systems, results, manifest.metrics.get("train_run")))
    return probes


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _note(text: str) -> str:
    """A warning paragraph, escaped, with its `commands` set as code."""
    return "<p>⚠ " + re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text)) + "</p>"


def summary(probes: Probes) -> str:
    """The status line's part about the probe: which runs are shown, or why none is."""
    shown = [f"`{run.run}` ({len(run.systems)} system{'s' * (len(run.systems) != 1)})" for run in probes.runs]
    lines = ["probe runs shown: " + ", ".join(shown)] if shown else []
    if not probes.stored:
        lines.append(f"⚠ {NO_PROBE}")
    return "  \n".join([*lines, *(f"⚠ {n}" for n in probes.notes)])


def _about(item: ProbeItem) -> str:
    """The item's form, fact and exposure in one line."""
    subject = f" with the subject “{_e(item.subject)}”" if item.subject else ""
    wording = " · its wording also occurs in training" if item.form == "generalisation" and item.wording_in_train else ""
    return (f'<p class="probe-about"><b>{_e(item.form)}</b> · key fact {item.fact_index + 1}: “{_e(item.fact)}” · '
            f"exposure <b>{_e(item.bucket)}</b> ({item.train_docs} training, {item.validation_docs} validation "
            f"documents{subject}) · {_e(item.value_type)} · {len(item.candidates)} candidates, chance "
            f"{100 * item.chance:.0f} % · stem from <code>{_e(item.source)}</code>{wording}</p>")


def _cell(result: ProbeResult | None, candidate: int) -> str:
    if result is None:
        return '<td class="unscored" title="not scored by this run">—</td>'
    ll = result.loglikelihoods[candidate]
    r = rank(result.loglikelihoods, candidate)
    top = ' class="top"' if r == 1 else ""
    return f'<td{top} title="log P = {ll:.4f}, rank {r}">{ll:.2f} <small>#{r}</small></td>'


def _greedy(result: ProbeResult | None) -> str:
    if result is None:
        return '<td class="unscored">—</td>'
    mark = ' class="match" title="starts with the true value"' if result.greedy_match else ""
    return f"<td{mark}>“{_e(result.greedy)}”</td>"


def item_html(item: ProbeItem, scored_by: list[ProbeRun]) -> str:
    """One probe item: what it is, its stem, and a table of its candidates (true one marked) against every
    system of ``scored_by`` (log-likelihood and rank, ties counting against, as the probe ranks)."""
    columns = [(run, system, run.results.get((item.id, system))) for run in scored_by for system in run.systems]
    groups = "".join(
        f'<th colspan="{len(run.systems)}" title="{_e(run.run)}'
        + (f" on {_e(run.train_run)}" if run.train_run else "") + f'">{_e(run.run)}</th>'
        for run in scored_by)
    names = "".join(f"<th>{_e(system)}</th>" for _, system, _ in columns)
    rows = []
    for i, candidate in enumerate(item.candidates):
        cells = "".join(_cell(result, i) for _, _, result in columns)
        if i == item.answer:
            rows.append(f'<tr class="true"><th title="the true value">✓ {_e(candidate)}</th>{cells}</tr>')
        else:
            rows.append(f"<tr><th>{_e(candidate)}</th>{cells}</tr>")
    rows.append('<tr class="greedy"><th>greedy continuation</th>'
                + "".join(_greedy(result) for _, _, result in columns) + "</tr>")
    return (f'<div class="probe-item" id="probe-{_e(item.id)}">{_about(item)}'
            f'<p class="probe-stem">{_e(item.stem)} <span class="probe-gap">____</span></p>'
            f'<div class="probe-scroll"><table class="probe"><thead><tr><th rowspan="2">candidate</th>{groups}</tr>'
            f"<tr>{names}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></div>")


def panel_html(probes: Probes | None, benchmark_id: str) -> str:
    """Every probe item of one benchmark item, memorisation before generalisation, fact by fact."""
    if probes is None or not probes.runs:
        notes = "".join(_note(n) for n in probes.notes) if probes else ""
        if probes is not None and probes.stored:
            return f'<div class="probe">{notes}<p>No probe run chosen: pick one above.</p></div>'
        return f'<div class="probe">{notes}{_note(NO_PROBE)}</div>'
    parts = []
    for items_run, by_benchmark in probes.items.items():
        scored_by = [run for run in probes.runs if run.items_run == items_run]
        found = sorted(by_benchmark.get(benchmark_id, []), key=lambda i: (i.fact_index, PROBE_FORMS.index(i.form)))
        if not scored_by:
            continue
        if not found:
            parts.append(f"<p>No probe items for <code>{_e(benchmark_id)}</code> in {_e(items_run)}: none of its "
                         "key facts gave a cloze stem (the run's <code>skipped_facts</code> counts why).</p>")
            continue
        heading = f'<p class="probe-run">{len(found)} probe item{"s" * (len(found) > 1)} of {_e(items_run)}</p>'
        parts.append(heading + "".join(item_html(item, scored_by) for item in found))
    return '<div class="probe">' + "".join(parts) + "".join(_note(n) for n in probes.notes) + "</div>"


CSS = """
.probe table.probe { border-collapse: collapse; font-size: 0.9em; }
.probe table.probe th, .probe table.probe td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
.probe table.probe thead th { text-align: center; }
.probe table.probe tbody th { text-align: left; font-weight: normal; }
.probe table.probe tr.true th, .probe table.probe tr.true td { background: #b7ebc6; color: #111; font-weight: bold; }
.probe table.probe td.top { text-decoration: underline; }
.probe table.probe tr.greedy td { text-align: left; font-style: italic; }
.probe table.probe tr.greedy td.match { background: #b7ebc6; color: #111; }
.probe .probe-scroll { overflow-x: auto; }
.probe .probe-item { margin-top: 1.2em; }
.probe .probe-stem { font-family: monospace; }
"""
