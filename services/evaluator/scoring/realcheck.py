"""Held-out validation of the frozen fact scorer on *real* system outputs (issue 18, item 6).

    python -m services.evaluator.scoring.realcheck sample --responses rag=R.jsonl ... [--per-system 60]
    python -m services.evaluator.scoring.realcheck report
    python -m services.evaluator.scoring.realcheck sample-verdicts --set NAME --store volumes/experiment/artifacts
    python -m services.evaluator.scoring.realcheck sample-claims --set NAME --store volumes/experiment/artifacts
    python -m services.evaluator.scoring.realcheck sample-answers --set NAME --store volumes/experiment/artifacts
    python -m services.evaluator.scoring.realcheck report --set NAME

``sample`` draws (key fact, response) pairs, seeded and stratified by system, from stored answers of
the systems; two readers label every pair independently (``labels-1.jsonl``, ``labels-2.jsonl``)
without seeing the scorer's verdicts, and a third reading settles the pairs they disagree on
(``adjudicated.jsonl``). ``report`` prints the readers' agreement (Cohen's kappa) and the scorer's
agreement, precision and recall of each verdict against the settled labels, each with its 95 %
interval and n, as recorded in docs/evaluation.md. ``sample-verdicts`` draws a later set from an
experiment's scored answers stratified by the scorer's verdict (so the rare verdicts get enough pairs for
their precision), into its own folder; its pairs are shuffled so the order tells a reader nothing, and its
report weights each stratum by its share of all the pairs it was drawn from. ``sample-claims`` and
``sample-answers`` draw the same way the claims the scorer judged supported or contradicted (each with the
evidence sentence that decided) and the answers by the scorer's kind (answer, refusal, non-answer), labelled
from CLAIMS_GUIDE.md; their report takes the scorer's verdicts from the strata, as the experiment stored them.
The dev set (``scoring_cases.jsonl``) holds written sentences; these sets hold only what the systems really said.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

import click
import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score

from services.evaluator import stats
from services.evaluator.inputs import load_benchmark, load_responses
from services.evaluator.scoring.entities import default_entities
from services.evaluator.scoring.facts import Embedder, FactScorer
from services.evaluator.settings import BENCHMARK, EvalConfig
from services.evaluator.stages import experiment as experiment_stage
from shared import runs
from shared.schemas.eval import BenchmarkItem, ItemScore, KeyFact, Response, ScoreFile
from shared.store import LocalStore

DATA = BENCHMARK.parent / "real_outputs"
VERDICTS = ("supported", "contradicted", "absent")
Verdict = Literal["supported", "contradicted", "absent"]
# One evidence sentence can show a claim supported or contradicted, never that nothing supports it: unverifiable
# claims are not drawn.
CLAIM_VERDICTS = ("supported", "contradicted")
ClaimLabelKind = Literal["supported", "contradicted", "neither"]
CLAIM_LABELS: tuple[str, ...] = ClaimLabelKind.__args__
AnswerKind = Literal["answer", "refusal", "non_answer"]
ANSWER_KINDS: tuple[str, ...] = AnswerKind.__args__
Kind = Literal["facts", "claims", "answers"]


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


class AnswerPair(BaseModel):
    """One system's real answer to one item, to be read as an answer, a refusal or a non-answer."""

    model_config = ConfigDict(extra="forbid")

    pair_id: str
    system: str
    source_run: str
    item_id: str
    question: str
    response: str


class ClaimPair(AnswerPair):
    """One atomic claim of one system's real answer and the evidence sentence the scorer judged it by; the
    verdict stays in the strata, which readers are not shown."""

    claim: str
    evidence: str
    source: str


class ClaimLabel(Label):
    verdict: ClaimLabelKind


class AnswerLabel(Label):
    verdict: AnswerKind


class SetKind(NamedTuple):
    pair: type[BaseModel]
    label: type[Label]
    says: tuple[str, ...]
    """what the scorer says of a pair: the strata"""
    reads: tuple[str, ...]
    """what a reader says"""


KINDS: dict[str, SetKind] = {"facts": SetKind(Pair, Label, VERDICTS, VERDICTS),
                             "claims": SetKind(ClaimPair, ClaimLabel, CLAIM_VERDICTS, CLAIM_LABELS),
                             "answers": SetKind(AnswerPair, AnswerLabel, ANSWER_KINDS, ANSWER_KINDS)}


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
    """How many pairs of one system got one verdict (or answer kind) from the scorer, and which were drawn."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind = "facts"
    system: str
    verdict: str
    population: int
    pair_ids: list[str]

    @model_validator(mode="after")
    def _said_by_the_scorer(self) -> Stratum:
        if self.verdict not in KINDS[self.kind].says:
            raise ValueError(f"the scorer says no {self.verdict!r} of {self.kind}")
        return self


P = TypeVar("P", Pair, ClaimPair, AnswerPair)


def _answered(answers: dict[str, tuple[str, list[Response], ScoreFile]]
              ) -> Iterator[tuple[str, str, str, ItemScore, BenchmarkItem]]:
    """(system, run, answer, score, item) of every benchmark item a system answered, systems in name order."""
    items = {i.id: i for i in load_benchmark(BENCHMARK)}
    for system, (run, responses, scores) in sorted(answers.items()):
        said = {r.id: r.response for r in responses}
        for score in scores.items:
            if score.id in items and score.id in said:
                yield system, run, said[score.id], score, items[score.id]


def _stratify(populations: dict[tuple[str, str], list[P]], kind: Kind, per_stratum: int, seed: int,
              fill: bool) -> tuple[list[P], list[Stratum]]:
    """Up to ``per_stratum`` pairs of each (system, verdict) population, distinct items first and, with ``fill``,
    more of the same items where there are too few; the pairs come back shuffled together."""
    rng = random.Random(seed)
    pairs, strata = [], []
    for (system, verdict), population in populations.items():
        seen: set[str] = set()
        first, rest = [], []
        for pair in rng.sample(population, len(population)):
            (rest if pair.item_id in seen else first).append(pair)
            seen.add(pair.item_id)
        drawn = (first + rest if fill else first)[:per_stratum]
        pairs += drawn
        strata.append(Stratum(kind=kind, system=system, verdict=verdict, population=len(population),
                              pair_ids=[p.pair_id for p in drawn]))
    rng.shuffle(pairs)
    return pairs, strata


def sample_by_verdict(answers: dict[str, tuple[str, list[Response], ScoreFile]], per_stratum: int,
                      seed: int) -> tuple[list[Pair], list[Stratum]]:
    """Up to ``per_stratum`` pairs of each (system, scorer verdict), distinct items within a stratum, drawn
    from every counted key fact of every scored answer; the pairs come back shuffled."""
    populations: dict[tuple[str, str], list[Pair]] = {(s, v): [] for s in sorted(answers) for v in VERDICTS}
    for system, run, said, score, item in _answered(answers):
        for index, fact in enumerate(score.facts):
            if fact.counted:
                populations[(system, fact.verdict)].append(Pair(
                    pair_id=f"{system}:{item.id}:{index}", system=system, source_run=run, item_id=item.id,
                    question=item.question, facts=item.key_facts, fact_index=index, response=said))
    return _stratify(populations, "facts", per_stratum, seed, fill=False)


def sample_claims(answers: dict[str, tuple[str, list[Response], ScoreFile]], per_stratum: int,
                  seed: int) -> tuple[list[ClaimPair], list[Stratum]]:
    """Up to ``per_stratum`` claims of each (system, claim verdict), from distinct answers where there are
    enough, each with the evidence sentence that decided it."""
    populations: dict[tuple[str, str], list[ClaimPair]] = {
        (s, v): [] for s in sorted(answers) for v in CLAIM_VERDICTS}
    for system, run, said, score, item in _answered(answers):
        if score.claims is None:
            raise click.ClickException(f"the scores of {system} ({run}) judged no claims of {item.id}")
        for index, claim in enumerate(score.claims):
            if claim.verdict in CLAIM_VERDICTS:
                populations[(system, claim.verdict)].append(ClaimPair(
                    pair_id=f"{system}:{item.id}:c{index}", system=system, source_run=run, item_id=item.id,
                    question=item.question, response=said, claim=claim.text, evidence=claim.evidence,
                    source=claim.source))
    return _stratify(populations, "claims", per_stratum, seed, fill=True)


def answer_kind(score: ItemScore) -> AnswerKind:
    """The scorer's kind of an answer: empty, declined by the hedging module's refusal cues, or an answer."""
    if score.non_answer:
        return "non_answer"
    return "refusal" if score.hedging["refusal"] else "answer"


def sample_answers(answers: dict[str, tuple[str, list[Response], ScoreFile]], per_stratum: int,
                   seed: int) -> tuple[list[AnswerPair], list[Stratum]]:
    """Up to ``per_stratum`` answers of each (system, the scorer's kind of answer)."""
    populations: dict[tuple[str, str], list[AnswerPair]] = {
        (s, k): [] for s in sorted(answers) for k in ANSWER_KINDS}
    for system, run, said, score, item in _answered(answers):
        populations[(system, answer_kind(score))].append(AnswerPair(
            pair_id=f"{system}:{item.id}", system=system, source_run=run, item_id=item.id, question=item.question,
            response=said))
    return _stratify(populations, "answers", per_stratum, seed, fill=False)


def _shares(strata: list[Stratum], hit: Callable[[str], bool], seed: int,
            resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """Each drawn stratum's share of pairs for which ``hit`` holds, and bootstrap draws of it within the stratum."""
    n = np.array([len(s.pair_ids) for s in strata])
    share = np.array([sum(hit(i) for i in s.pair_ids) for s in strata]) / n
    rng = np.random.default_rng(seed)
    return share, rng.binomial(n[:, None], share[:, None], size=(len(strata), resamples)) / n[:, None]


WEIGHTED = "strata weighted by population; percentile bootstrap within strata"


def weighted_agreement(strata: list[Stratum], gold: dict[str, str], verdicts: dict[str, str], seed: int,
                       resamples: int = 2000) -> stats.Interval:
    """The scorer's agreement over all the pairs the strata were drawn from: each stratum's sampled agreement
    weighted by its population, with a bootstrap that resamples within strata."""
    drawn = [s for s in strata if s.pair_ids]
    if not drawn:
        return stats.Interval(estimate=None, n=0, undefined_reason="no pairs drawn", method=WEIGHTED)
    weights = np.array([s.population for s in drawn], dtype=float)
    weights /= weights.sum()
    share, draws = _shares(drawn, lambda i: verdicts[i] == gold[i], seed, resamples)
    low, high = np.percentile(weights @ draws, [2.5, 97.5])
    return stats.Interval(estimate=float(weights @ share), low=float(low), high=float(high),
                          n=sum(len(s.pair_ids) for s in drawn), method=WEIGHTED)


def weighted_recall(strata: list[Stratum], gold: dict[str, str], label: str, seed: int,
                    resamples: int = 2000) -> stats.Interval:
    """Of all the pairs the strata were drawn from that the readers would call ``label``, the share the scorer
    called so: each stratum's sampled share of ``label`` scaled to its population."""
    n = sum(len(s.pair_ids) for s in strata)
    if missed := [s for s in strata if s.population and not s.pair_ids]:
        return stats.Interval(estimate=None, n=n, method=WEIGHTED,
                              undefined_reason=f"the stratum {missed[0].system} {missed[0].verdict} was not drawn")
    drawn = [s for s in strata if s.pair_ids]
    share, draws = _shares(drawn, lambda i: gold[i] == label, seed, resamples)
    population = np.array([s.population for s in drawn], dtype=float)
    found = population * np.array([s.verdict == label for s in drawn])
    if not share.any():
        return stats.Interval(estimate=None, n=n, undefined_reason=f"no pair is settled as {label}", method=WEIGHTED)
    with np.errstate(invalid="ignore"):  # a resample without any such pair has no recall; it is left out
        low, high = np.nanpercentile((found @ draws) / (population @ draws), [2.5, 97.5])
    return stats.Interval(estimate=float(found @ share / (population @ share)), low=float(low), high=float(high),
                          n=n, method=WEIGHTED)


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


def kappa_interval(x: list[str], y: list[str], seed: int, resamples: int = 2000,
                   labels: tuple[str, ...] = VERDICTS) -> stats.Interval:
    """Cohen's kappa with a seeded percentile bootstrap over pairs."""
    x_arr, y_arr = np.array(x), np.array(y)
    estimate = cohen_kappa_score(x_arr, y_arr, labels=list(labels))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, len(x_arr), len(x_arr))
        if len(set(x_arr[idx]) | set(y_arr[idx])) > 1:
            draws.append(cohen_kappa_score(x_arr[idx], y_arr[idx], labels=list(labels)))
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
    """The frozen scorer's verdict on each pair (its default settings)."""
    scorer = FactScorer(EvalConfig(), default_entities(), Embedder())
    scorer.prefetch([(p.question, p.facts, p.response) for p in pairs])
    return {p.pair_id: scorer.judge(p.question, p.facts, p.response)[p.fact_index].verdict for p in pairs}


def _readers(pairs: list, first: list[Label], second: list[Label], gold: dict[str, str], labels: tuple[str, ...],
             seed: int) -> list[str]:
    """The set's size, its settled labels and how far the two readers agree."""
    ids = [p.pair_id for p in pairs]
    a = {lab.pair_id: lab.verdict for lab in first}
    b = {lab.pair_id: lab.verdict for lab in second}
    kappa = kappa_interval([a[i] for i in ids], [b[i] for i in ids], seed, labels=labels)
    return [f"Pairs: {len(pairs)} ({', '.join(f'{s} {n}' for s, n in sorted(Counter(p.system for p in pairs).items()))}).",
            f"Settled labels: {', '.join(f'{v} {Counter(gold.values())[v]}' for v in labels)}.", "",
            f"- Readers agree on {proportion(sum(a[i] == b[i] for i in ids), len(ids))}; Cohen's kappa {_kappa(kappa)}"]


def report_text(pairs: list[Pair], first: list[Label], second: list[Label], adjudicated: list[Label],
                verdicts: dict[str, str], seed: int = stats.SEED, strata: list[Stratum] | None = None) -> str:
    gold = settled(pairs, first, second, adjudicated)
    ids = [p.pair_id for p in pairs]
    lines = _readers(pairs, first, second, gold, VERDICTS, seed)
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


def stratified_report(kind: Kind, pairs: list, first: list[Label], second: list[Label], adjudicated: list[Label],
                      strata: list[Stratum], seed: int = stats.SEED) -> str:
    """A claims or answers set: the readers' agreement and the precision of what the scorer said (the strata,
    as the experiment stored it) per stratum, pooled over systems and weighted by the strata's populations."""
    says = KINDS[kind].says
    gold = settled(pairs, first, second, adjudicated)
    said = {i: s.verdict for s in strata for i in s.pair_ids}
    lines = _readers(pairs, first, second, gold, KINDS[kind].reads, seed)
    lines += ["", "| system | scorer said | population | drawn | precision |", "|---|---|---:|---:|---|"]
    for s in strata:
        right = sum(gold[i] == s.verdict for i in s.pair_ids)
        lines.append(f"| {s.system} | {s.verdict} | {s.population} | {len(s.pair_ids)} | "
                     f"{proportion(right, len(s.pair_ids))} |")
    lines += ["", "| scorer said | precision in the sample | weighted by population |", "|---|---|---|"]
    for verdict in says:
        mine = [s for s in strata if s.verdict == verdict]
        drawn = [i for s in mine for i in s.pair_ids]
        lines.append(f"| {verdict} | {proportion(sum(gold[i] == verdict for i in drawn), len(drawn))} | "
                     f"{weighted_agreement(mine, gold, said, seed)} |")
    lines.append("")
    if kind == "claims":
        lines.append("Recall is not estimated: unverifiable claims were not drawn, so a claim the scorer "
                     "missed is not in the sample.")
    else:
        lines += [f"- Recall of {label}, weighted by population: {weighted_recall(strata, gold, label, seed)}"
                  for label in says if label != "answer"]
    return "\n".join(lines)


@click.group()
def main() -> None:
    """Held-out validation of the scorer's fact and claim verdicts and answer kinds on real outputs."""


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
ANSWERING = ("rag", "closed_book", "scratch", "scratch_base")
"""The systems a claims or answers set is drawn from by default, those of them the experiment has."""


def experiment_answers(root: Path, systems: tuple[str, ...] | None
                       ) -> dict[str, tuple[str, list[Response], ScoreFile]]:
    """Each system's answers and scores of the latest experiment in a local artifact store; ``None``: those of
    ANSWERING it has."""
    store = LocalStore(root)
    found = experiment_stage.latest(store)
    if found is None:
        raise click.ClickException(f"{root} holds no experiment run: run `make experiment` first")
    result = found[1]
    if systems is None:
        systems = tuple(s for s in ANSWERING if s in result.systems)
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


def _draw_command(name: str, sampler: Callable, systems: str | None, summary: str) -> None:
    """A command that draws a new set with ``sampler`` from the latest experiment's answers into its own folder,
    written whole: a partial folder renamed into place, so a half-written set is never found as a set."""

    @click.option("--set", "name", required=True, help="the new set's folder under benchmark/real_outputs/")
    @click.option("--store", "root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
                  help="a local artifact store holding an experiment (volumes/experiment/artifacts)")
    @click.option("--systems", default=systems, show_default=systems or f"those of {', '.join(ANSWERING)} it has")
    @click.option("--per-stratum", type=click.IntRange(min=1), default=20, show_default=True)
    @click.option("--seed", type=int, default=20261207, show_default=True)
    def draw(name: str, root: Path, systems: str | None, per_stratum: int, seed: int) -> None:
        folder = DATA / name
        if folder.exists():
            raise click.ClickException(f"{folder} exists; its pairs may be labelled already")
        pairs, strata = sampler(experiment_answers(root, tuple(systems.split(",")) if systems else None),
                                per_stratum, seed)
        partial = folder.with_name(f".{name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        (partial / "pairs.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in pairs))
        (partial / "strata.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in strata))
        partial.rename(folder)
        click.echo(f"{folder}: {len(pairs)} pairs in {sum(bool(s.pair_ids) for s in strata)} strata")

    main.command(name, help=summary)(draw)


_draw_command("sample-verdicts", sample_by_verdict, ",".join(SYSTEMS),
              "Draw a new set stratified by the scorer's fact verdict from the latest experiment's answers.")
_draw_command("sample-claims", sample_claims, None,
              "Draw a new set of claims stratified by the scorer's claim verdict (supported, contradicted).")
_draw_command("sample-answers", sample_answers, None,
              "Draw a new set of answers stratified by the scorer's kind (answer, refusal, non_answer).")


@main.command()
@click.option("--set", "name", default=None, help="a set's folder under benchmark/real_outputs/ (default: the first set)")
def report(name: str | None) -> None:
    """Readers' and scorer's agreement, per-verdict precision and recall (Markdown)."""
    folder = DATA / name if name else DATA
    if not (folder / "pairs.jsonl").exists():
        sets = sorted(p.parent.name for p in DATA.glob("*/pairs.jsonl"))
        raise click.ClickException(f"no set {name!r} under {DATA} (sets: {', '.join(sets) or 'none'})")
    strata = _read(folder / "strata.jsonl", Stratum) if (folder / "strata.jsonl").exists() else None
    kind = strata[0].kind if strata else "facts"
    pairs = _read(folder / "pairs.jsonl", KINDS[kind].pair)
    if missing := [n for n in ("labels-1.jsonl", "labels-2.jsonl") if not (folder / n).exists()]:
        raise click.ClickException(f"{folder} has no {' or '.join(missing)}: the set is not labelled yet")
    labels = [_read(folder / f"labels-{n}.jsonl", KINDS[kind].label) for n in (1, 2)]
    adjudicated = (_read(folder / "adjudicated.jsonl", KINDS[kind].label)
                   if (folder / "adjudicated.jsonl").exists() else [])
    if kind == "facts":
        click.echo(report_text(pairs, *labels, adjudicated, judge(pairs), strata=strata))
    else:
        click.echo(stratified_report(kind, pairs, *labels, adjudicated, strata))


if __name__ == "__main__":
    main()
