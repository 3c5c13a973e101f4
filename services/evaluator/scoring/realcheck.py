"""Held-out validation of the frozen fact scorer on *real* system outputs (issue 18, item 6).

    python -m services.evaluator.scoring.realcheck sample --responses rag=R.jsonl ... [--per-system 60]
    python -m services.evaluator.scoring.realcheck report

``sample`` draws (key fact, response) pairs, seeded and stratified by system, from stored answers of
the systems; two readers label every pair independently (``labels-1.jsonl``, ``labels-2.jsonl``)
without seeing the scorer's verdicts, and a third reading settles the pairs they disagree on
(``adjudicated.jsonl``). ``report`` prints the readers' agreement (Cohen's kappa) and the scorer's
agreement, precision and recall of each verdict against the settled labels, each with its 95 %
interval and n, as recorded in docs/evaluation.md. The dev set (``scoring_cases.jsonl``) holds
written sentences; this set holds only what the systems really said.
"""

from __future__ import annotations

import random
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
from shared.schemas.eval import KeyFact

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
                verdicts: dict[str, str], seed: int = stats.SEED) -> str:
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


@main.command()
def report() -> None:
    """Readers' and scorer's agreement, per-verdict precision and recall (Markdown)."""
    pairs = _read(DATA / "pairs.jsonl", Pair)
    labels = [_read(DATA / f"labels-{n}.jsonl", Label) for n in (1, 2)]
    adjudicated = _read(DATA / "adjudicated.jsonl", Label) if (DATA / "adjudicated.jsonl").exists() else []
    click.echo(report_text(pairs, *labels, adjudicated, judge(pairs)))


if __name__ == "__main__":
    main()
