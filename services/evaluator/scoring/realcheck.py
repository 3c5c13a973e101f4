"""Held-out validation of the frozen fact scorer on *real* system outputs (issue 18, item 6).

    python -m services.evaluator.scoring.realcheck sample --responses rag=R.jsonl ... [--per-system 60]
    python -m services.evaluator.scoring.realcheck report
    python -m services.evaluator.scoring.realcheck sample-verdicts --set NAME --store volumes/experiment/artifacts
    python -m services.evaluator.scoring.realcheck report --set NAME

``sample`` draws (key fact, response) pairs, seeded and stratified by system, from stored answers of
the systems; two readers label every pair independently (``labels-1.jsonl``, ``labels-2.jsonl``)
without seeing the scorer's verdicts, and a third reading settles the pairs they disagree on
(``adjudicated.jsonl``). ``report`` prints the readers' agreement (Cohen's kappa) and the scorer's
agreement, precision and recall of each verdict against the settled labels, each with its 95 %
interval and n, as recorded in docs/evaluation.md. ``sample-verdicts`` draws a later set from an
experiment's scored answers stratified by the scorer's verdict (so the rare verdicts get enough pairs for
their precision), into its own folder; its pairs are shuffled so the order tells a reader nothing, and its
report weights each stratum by its share of all the pairs it was drawn from. The dev set (``scoring_cases.jsonl``) holds
written sentences; this set holds only what the systems really said.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Literal

import click
import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score

from services.evaluator import stats
from services.evaluator.inputs import load_benchmark, load_responses
from services.evaluator.scoring.entities import default_entities
from services.evaluator.scoring.facts import Embedder, FactScorer
from services.evaluator.settings import BENCHMARK, EvalConfig
from services.evaluator.stages import experiment as experiment_stage
from shared import runs
from shared.schemas.eval import KeyFact, Response, ScoreFile
from shared.store import LocalStore

DATA = BENCHMARK.parent / "real_outputs"
VERDICTS = ("supported", "contradicted", "absent")
Verdict = Literal["supported", "contradicted", "absent"]


class Pair(BaseModel):
    """One key fact of one item and one system's real answer to that item."""

    model_config = ConfigDict(extra="forbid")

    pair_id: str
    system: str
    source_run: str
    item_id: str
    question: str
    facts: list[KeyFact]
    fact_index: int
    response: str

    @property
    def fact(self) -> KeyFact:
        return self.facts[self.fact_index]


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pair_id: str
    verdict: Verdict
    note: str = ""


def _read(path: Path, model: type[BaseModel]) -> list:
    return [model.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def sample_pairs(responses: dict[str, tuple[str, Path]], per_system: int, seed: int) -> list[Pair]:
    """``per_system`` pairs from each system's answers, drawn without replacement, at most one counted
    fact per item and system so no single answer dominates; empty answers are kept (they are real outputs)."""
    items = {i.id: i for i in load_benchmark(BENCHMARK)}
    rng = random.Random(seed)
    pairs = []
    for system, (run, path) in sorted(responses.items()):
        answers = [r for r in load_responses(path) if r.id in items]
        rng.shuffle(answers)
        for answer in answers[:per_system]:
            item = items[answer.id]
            index = rng.choice([i for i, f in enumerate(item.key_facts) if f.counted])
            pairs.append(Pair(pair_id=f"{system}:{item.id}:{index}", system=system, source_run=run,
                              item_id=item.id, question=item.question, facts=item.key_facts, fact_index=index,
                              response=answer.response))
    return pairs


class Stratum(BaseModel):
    """How many (answer, counted fact) pairs of one system got one verdict, and how many were drawn."""

    model_config = ConfigDict(extra="forbid")

    system: str
    verdict: Verdict
    population: int
    pair_ids: list[str]


def sample_by_verdict(answers: dict[str, tuple[str, list[Response], ScoreFile]], per_stratum: int,
                      seed: int) -> tuple[list[Pair], list[Stratum]]:
    """Up to ``per_stratum`` pairs of each (system, scorer verdict), distinct items within a stratum, drawn
    from every counted key fact of every scored answer; the pairs come back shuffled."""
    items = {i.id: i for i in load_benchmark(BENCHMARK)}
    rng = random.Random(seed)
    pairs, strata = [], []
    for system, (run, responses, scores) in sorted(answers.items()):
        said = {r.id: r.response for r in responses}
        by_verdict: dict[str, list[tuple[str, int]]] = {v: [] for v in VERDICTS}
        for score in scores.items:
            if score.id in items and score.id in said:
                for index, fact in enumerate(score.facts):
                    if fact.counted:
                        by_verdict[fact.verdict].append((score.id, index))
        for verdict, population in by_verdict.items():
            shuffled = rng.sample(population, len(population))
            chosen, seen = [], set()
            for item_id, index in shuffled:
                if item_id not in seen and len(chosen) < per_stratum:
                    chosen.append((item_id, index))
                    seen.add(item_id)
            drawn = [Pair(pair_id=f"{system}:{item_id}:{index}", system=system, source_run=run, item_id=item_id,
                          question=items[item_id].question, facts=items[item_id].key_facts, fact_index=index,
                          response=said[item_id]) for item_id, index in chosen]
            pairs += drawn
            strata.append(Stratum(system=system, verdict=verdict, population=len(population),
                                  pair_ids=[p.pair_id for p in drawn]))
    rng.shuffle(pairs)
    return pairs, strata


def weighted_agreement(strata: list[Stratum], gold: dict[str, str], verdicts: dict[str, str], seed: int,
                       resamples: int = 2000) -> stats.Interval:
    """The scorer's agreement over all the pairs the strata were drawn from: each stratum's sampled agreement
    weighted by its population, with a bootstrap that resamples within strata."""
    drawn = [s for s in strata if s.pair_ids]
    weights = np.array([s.population for s in drawn], dtype=float)
    weights /= weights.sum()
    n = np.array([len(s.pair_ids) for s in drawn])
    hits = np.array([sum(verdicts[i] == gold[i] for i in s.pair_ids) for s in drawn])
    rng = np.random.default_rng(seed)
    draws = rng.binomial(n[:, None], (hits / n)[:, None], size=(len(drawn), resamples)) / n[:, None]
    low, high = np.percentile(weights @ draws, [2.5, 97.5])
    return stats.Interval(estimate=float(weights @ (hits / n)), low=float(low), high=float(high), n=int(n.sum()),
                          method="strata weighted by population; percentile bootstrap within strata")


def settled(pairs: list[Pair], first: list[Label], second: list[Label], adjudicated: list[Label]) -> dict[str, str]:
    """The label of each pair: the readers' shared verdict, or the adjudicator's where they differ."""
    a, b, c = ({lab.pair_id: lab.verdict for lab in labels} for labels in (first, second, adjudicated))
    out = {}
    for pair in pairs:
        pid = pair.pair_id
        if pid not in a or pid not in b:
            raise click.ClickException(f"pair {pid} is not labelled by both readers")
        if a[pid] == b[pid]:
            out[pid] = a[pid]
        elif pid in c:
            out[pid] = c[pid]
        else:
            raise click.ClickException(f"readers disagree on {pid} ({a[pid]} / {b[pid]}) and it is not adjudicated")
    return out


def kappa_interval(x: list[str], y: list[str], seed: int, resamples: int = 2000) -> stats.Interval:
    """Cohen's kappa with a seeded percentile bootstrap over pairs."""
    x_arr, y_arr = np.array(x), np.array(y)
    estimate = cohen_kappa_score(x_arr, y_arr, labels=list(VERDICTS))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, len(x_arr), len(x_arr))
        if len(set(x_arr[idx]) | set(y_arr[idx])) > 1:
            draws.append(cohen_kappa_score(x_arr[idx], y_arr[idx], labels=list(VERDICTS)))
    low, high = np.percentile(draws, [2.5, 97.5])
    return stats.Interval(estimate=float(estimate), low=float(low), high=float(high), n=len(x_arr),
                          method="percentile bootstrap of Cohen's kappa")


def _kappa(k: stats.Interval) -> str:
    return f"{k.estimate:.2f} [{k.low:.2f}, {k.high:.2f}] (n={k.n})"


def proportion(k: int, n: int) -> stats.Interval:
    """A share with its exact (Clopper-Pearson) interval; undefined when nothing was counted."""
    if n == 0:
        return stats.Interval(estimate=None, n=0, undefined_reason="no cases", method="Clopper-Pearson")
    ci = binomtest(k, n).proportion_ci(confidence_level=stats.LEVEL, method="exact")
    return stats.Interval(estimate=k / n, low=ci.low, high=ci.high, n=n, method="Clopper-Pearson")


def judge(pairs: list[Pair]) -> dict[str, str]:
    """The frozen scorer's verdict on each pair (its default settings, MiniLM fallback on)."""
    scorer = FactScorer(EvalConfig(), default_entities(), Embedder())
    scorer.prefetch([(p.question, p.facts, p.response) for p in pairs])
    return {p.pair_id: scorer.judge(p.question, p.facts, p.response)[p.fact_index].verdict for p in pairs}


def report_text(pairs: list[Pair], first: list[Label], second: list[Label], adjudicated: list[Label],
                verdicts: dict[str, str], seed: int = stats.SEED, strata: list[Stratum] | None = None) -> str:
    gold = settled(pairs, first, second, adjudicated)
    ids = [p.pair_id for p in pairs]
    a = {lab.pair_id: lab.verdict for lab in first}
    b = {lab.pair_id: lab.verdict for lab in second}
    lines = [f"Pairs: {len(pairs)} ({', '.join(f'{s} {n}' for s, n in sorted(Counter(p.system for p in pairs).items()))}).",
             f"Settled labels: {', '.join(f'{v} {Counter(gold.values())[v]}' for v in VERDICTS)}.", ""]
    readers = sum(a[i] == b[i] for i in ids)
    lines.append(f"- Readers agree on {proportion(readers, len(ids))}; "
                 f"Cohen's kappa {_kappa(kappa_interval([a[i] for i in ids], [b[i] for i in ids], seed))}")
    hits = sum(verdicts[i] == gold[i] for i in ids)
    lines.append(f"- Scorer agrees with the settled label on {proportion(hits, len(ids))}; "
                 f"Cohen's kappa {_kappa(kappa_interval([gold[i] for i in ids], [verdicts[i] for i in ids], seed))}")
    lines += ["", "| verdict | precision | recall |", "|---|---|---|"]
    for v in VERDICTS:
        said = [i for i in ids if verdicts[i] == v]
        true = [i for i in ids if gold[i] == v]
        precision = proportion(sum(gold[i] == v for i in said), len(said))
        recall = proportion(sum(verdicts[i] == v for i in true), len(true))
        lines.append(f"| {v} | {precision} | {recall} |")
    lines += ["", "| settled \\ scorer | " + " | ".join(VERDICTS) + " |", "|---" * (len(VERDICTS) + 1) + "|"]
    confusion = Counter((gold[i], verdicts[i]) for i in ids)
    for g in VERDICTS:
        lines.append(f"| {g} | " + " | ".join(str(confusion[(g, v)]) for v in VERDICTS) + " |")
    if strata:
        population = sum(s.population for s in strata)
        overall = weighted_agreement(strata, gold, verdicts, seed)
        lines += ["", (f"Stratified by the scorer's verdict: the shares above are of the sample. Over all {population} "
                       f"pairs the strata were drawn from, the scorer agrees with the settled label on {overall}; "
                       "recall is not estimated from this sample."),
                  "", "| system | verdict | pairs | drawn | precision |", "|---|---|---|---|---|"]
        for s in strata:
            right = sum(gold[i] == s.verdict for i in s.pair_ids)
            lines.append(f"| {s.system} | {s.verdict} | {s.population} | {len(s.pair_ids)} | "
                         f"{proportion(right, len(s.pair_ids))} |")
    by_system = Counter(p.system for p in pairs)
    agreed = Counter(p.system for p in pairs if verdicts[p.pair_id] == gold[p.pair_id])
    lines += ["", "| system | scorer agreement |", "|---|---|"]
    lines += [f"| {s} | {proportion(agreed[s], n)} |" for s, n in sorted(by_system.items())]
    return "\n".join(lines)


@click.group()
def main() -> None:
    """Held-out validation of the fact scorer on real outputs."""


@main.command()
@click.option("--responses", "specs", multiple=True, required=True,
              help="SYSTEM=RUN=PATH: a system's responses.jsonl and the run it comes from.")
@click.option("--per-system", type=click.IntRange(min=1), default=60, show_default=True)
@click.option("--seed", type=int, default=20261204, show_default=True)
def sample(specs: tuple[str, ...], per_system: int, seed: int) -> None:
    """Add pairs for systems not drawn yet to DATA/pairs.jsonl; drawn (and labelled) pairs stay as they are."""
    out = DATA / "pairs.jsonl"
    drawn = _read(out, Pair) if out.exists() else []
    responses = {}
    for spec in specs:
        system, run, path = spec.split("=", 2)
        if any(p.system == system for p in drawn):
            raise click.ClickException(f"{out} already holds pairs of {system}; they may be labelled already")
        responses[system] = (run, Path(path))
    DATA.mkdir(exist_ok=True)
    pairs = sample_pairs(responses, per_system, seed)
    out.write_text("".join(p.model_dump_json() + "\n" for p in drawn + pairs))
    click.echo(f"{out}: {len(pairs)} new pairs, {len(drawn) + len(pairs)} in all")


SYSTEMS = ("rag", "closed_book", "scratch_base")


def experiment_answers(root: Path, systems: tuple[str, ...]) -> dict[str, tuple[str, list[Response], ScoreFile]]:
    """Each system's answers and scores of the latest experiment in a local artifact store."""
    store = LocalStore(root)
    found = experiment_stage.latest(store)
    if found is None:
        raise click.ClickException(f"{root} holds no experiment run: run `make experiment` first")
    result = found[1]
    if unknown := sorted(set(systems) - set(result.systems)):
        raise click.ClickException(f"{found[0].run} has no system {', '.join(unknown)} "
                                   f"(it has {', '.join(result.systems)})")
    answers = {}
    for system in systems:
        scored = runs.resolve(store, result.systems[system])
        asked = runs.resolve(store, scored.metrics["eval_run"])
        responses = [Response.model_validate_json(line) for line in
                     store.get_bytes(asked.output("responses.jsonl").key).decode().splitlines() if line.strip()]
        answers[system] = (asked.run, responses,
                           ScoreFile.model_validate_json(store.get_bytes(scored.output("scores.json").key)))
    return answers


@main.command("sample-verdicts")
@click.option("--set", "name", required=True, help="the new set's folder under benchmark/real_outputs/")
@click.option("--store", "root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="a local artifact store holding an experiment (volumes/experiment/artifacts)")
@click.option("--systems", default=",".join(SYSTEMS), show_default=True)
@click.option("--per-stratum", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--seed", type=int, default=20261207, show_default=True)
def sample_verdicts(name: str, root: Path, systems: str, per_stratum: int, seed: int) -> None:
    """Draw a new set stratified by the scorer's verdict from the latest experiment's answers."""
    folder = DATA / name
    if folder.exists():
        raise click.ClickException(f"{folder} exists; its pairs may be labelled already")
    pairs, strata = sample_by_verdict(experiment_answers(root, tuple(systems.split(","))), per_stratum, seed)
    partial = folder.with_name(f".{name}.partial")  # renamed whole: a half-written set is never found as a set
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "pairs.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in pairs))
    (partial / "strata.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in strata))
    partial.rename(folder)
    click.echo(f"{folder}: {len(pairs)} pairs in {sum(bool(s.pair_ids) for s in strata)} strata")


@main.command()
@click.option("--set", "name", default=None, help="a set's folder under benchmark/real_outputs/ (default: the first set)")
def report(name: str | None) -> None:
    """Readers' and scorer's agreement, per-verdict precision and recall (Markdown)."""
    folder = DATA / name if name else DATA
    if not (folder / "pairs.jsonl").exists():
        sets = sorted(p.parent.name for p in DATA.glob("*/pairs.jsonl"))
        raise click.ClickException(f"no set {name!r} under {DATA} (sets: {', '.join(sets) or 'none'})")
    pairs = _read(folder / "pairs.jsonl", Pair)
    labels = [_read(folder / f"labels-{n}.jsonl", Label) for n in (1, 2)]
    adjudicated = _read(folder / "adjudicated.jsonl", Label) if (folder / "adjudicated.jsonl").exists() else []
    strata = _read(folder / "strata.jsonl", Stratum) if (folder / "strata.jsonl").exists() else None
    click.echo(report_text(pairs, *labels, adjudicated, judge(pairs), strata=strata))


if __name__ == "__main__":
    main()
