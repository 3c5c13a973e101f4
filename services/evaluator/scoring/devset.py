"""Agreement of the fact scorer with the labelled dev set (``benchmark/scoring_cases.jsonl``).

    python -m services.evaluator.scoring.devset [--split dev|heldout|validation|validation_v2|validation_v3] [--misses]
        [--no-embeddings] [--no-acceptability]

prints agreement overall and by kind, and the confusion table (label x scorer verdict) by kind and
overall, as recorded in docs/evaluation.md. Each case is one (question, key fact, response) with the
verdict a reader gave it; the key fact is a plain string or a ``KeyFact`` object (aliases, range...).
Cases marked ``"split": "heldout"`` were written after the rules were frozen and never tuned on: the
``dev`` cases are the ones the rules were developed against. ``validation_cases.jsonl`` (issue 24)
holds cases written, by kind and value type, before the rules of issue 24 changed and never read
while they were changed; ``--split validation`` scores them. ``validation_cases_v2.jsonl`` is a second
such set, written once the first had been measured (so spent) and before the next rule change;
``--split validation_v2`` scores it. ``validation_cases_v3.jsonl`` is a third, written once v2 had been
measured and before the next rule change; ``--split validation_v3`` scores it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import click

from services.evaluator import stats
from services.evaluator.scoring.facts import FactScorer
from services.evaluator.settings import BENCHMARK
from shared.errors import InvalidInput
from shared.schemas.eval import KeyFact

CASES = BENCHMARK.parent / "scoring_cases.jsonl"
VALIDATION = BENCHMARK.parent / "validation_cases.jsonl"
VALIDATION_V2 = BENCHMARK.parent / "validation_cases_v2.jsonl"
VALIDATION_V3 = BENCHMARK.parent / "validation_cases_v3.jsonl"
# Splits kept in a file of their own; the other splits are marked cases of CASES.
SPLIT_FILES = {"validation": VALIDATION, "validation_v2": VALIDATION_V2, "validation_v3": VALIDATION_V3}
VERDICTS = ("supported", "contradicted", "absent")


@dataclass
class Agreement:
    n: int
    agreed: int
    by_kind: dict[str, tuple[int, int]]  # kind -> (agreed, n)
    confusion: dict[str, Counter]  # kind (and "all") -> Counter[(label, verdict)]
    misses: list[str]

    @property
    def rate(self) -> float:
        return self.agreed / self.n


def load_cases(path: Path = CASES) -> list[dict]:
    cases = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        case = json.loads(line)
        if case.get("verdict") not in VERDICTS:
            raise InvalidInput(f"{path}:{lineno}: verdict {case.get('verdict')!r} is not one of {VERDICTS}")
        case["key_fact"] = KeyFact.model_validate(case["key_fact"])
        case.setdefault("split", "dev")
        cases.append(case)
    return cases


def load_split(split: str) -> list[dict]:
    """The cases of one split: a validation set's own file, or the cases of CASES marked with the split
    (``all``: dev and heldout together)."""
    if split in SPLIT_FILES:
        return load_cases(SPLIT_FILES[split])
    return [c for c in load_cases() if split in ("all", c["split"])]


def agreement(scorer: FactScorer, cases: list[dict]) -> Agreement:
    by_kind: dict[str, list[bool]] = defaultdict(list)
    confusion: dict[str, Counter] = defaultdict(Counter)
    misses = []
    for case in cases:
        got = scorer.judge(case["question"], [case["key_fact"]], case["response"])[0]
        agree = got.verdict == case["verdict"]
        by_kind[case["kind"]].append(agree)
        for key in (case["kind"], "all"):
            confusion[key][(case["verdict"], got.verdict)] += 1
        if not agree:
            misses.append(f"{case['case_id']} ({case['kind']}): labelled {case['verdict']}, scored {got.verdict}"
                          f" [{got.method} {got.rejected}]: {case['key_fact'].text!r} in {case['response']!r}")
    agreed = sum(sum(v) for v in by_kind.values())
    return Agreement(len(cases), agreed, {k: (sum(v), len(v)) for k, v in sorted(by_kind.items())},
                     dict(confusion), misses)


def table(result: Agreement) -> str:
    """Markdown: agreement by kind, then the label x verdict confusion per kind and overall."""
    head = "| kind | n | agreement | " + " | ".join(f"{lab[:4]}→{got[:4]}" for lab in VERDICTS for got in VERDICTS)
    lines = [head + " |", "|---" * (3 + len(VERDICTS) ** 2) + "|"]
    for kind in [*result.by_kind, "all"]:
        agreed, n = result.by_kind.get(kind, (result.agreed, result.n))
        cells = " | ".join(str(result.confusion[kind][(lab, got)]) for lab in VERDICTS for got in VERDICTS)
        lines.append(f"| {kind} | {n} | {agreed}/{n} ({agreed / n:.1%}) | {cells} |")
    return "\n".join(lines)


def _share(k: int, n: int) -> stats.Interval:
    return stats.bootstrap_mean([1.0] * k + [0.0] * (n - k))


def precision_recall(result: Agreement) -> dict[str, tuple[stats.Interval, stats.Interval]]:
    """Per verdict: of the cases the scorer gave it, the share labelled so (precision), and of the cases
    labelled so, the share the scorer found (recall); each a share of cases with its 95 % interval."""
    confusion = result.confusion["all"]
    out = {}
    for v in VERDICTS:
        hit = confusion[(v, v)]
        out[v] = (_share(hit, sum(confusion[(lab, v)] for lab in VERDICTS)),
                  _share(hit, sum(confusion[(v, got)] for got in VERDICTS)))
    return out


@click.command()
@click.option("--split", type=click.Choice(["all", "dev", "heldout", *SPLIT_FILES]), default="all",
              show_default=True, help="Which cases: those the rules were developed on, those written after "
              "(heldout) or before a rule change (validation, validation_v2, validation_v3), or dev and heldout "
              "together.")
@click.option("--misses", is_flag=True, help="List the disagreements too.")
@click.option("--no-embeddings", is_flag=True, help="Lexical rules only (no MiniLM fallback).")
@click.option("--no-acceptability", is_flag=True, help="Do not recognise word salad and loops as non-answers.")
def main(split: str, misses: bool, no_embeddings: bool, no_acceptability: bool) -> None:
    from services.evaluator.scoring.entities import default_entities
    from services.evaluator.scoring.facts import Embedder
    from services.evaluator.settings import EvalConfig

    config = EvalConfig(use_embeddings=not no_embeddings, use_acceptability=not no_acceptability)
    scorer = FactScorer(config, default_entities(), Embedder())
    result = agreement(scorer, load_split(split))
    rate = stats.bootstrap_mean([1.0] * result.agreed + [0.0] * (result.n - result.agreed))
    click.echo(f"agreement on {result.n} labelled cases ({split}): {result.agreed}/{result.n}, {rate}\n")
    click.echo(table(result))
    click.echo("\n| verdict | precision | recall |\n|---|---|---|")
    for verdict, (precision, recall) in precision_recall(result).items():
        click.echo(f"| {verdict} | {precision} | {recall} |")
    if misses:
        click.echo("\n" + "\n".join(result.misses))


if __name__ == "__main__":
    main()
