"""Scoring probe items by likelihood, and the rates with their intervals (docs/probe.md).

An item is answered by ranking its candidates by the log-likelihood the system gives each after the
stem (lm-evaluation-harness's multiple choice): accuracy@1 against the chance level 1/(k+1), the same by
log-likelihood per character (lm-eval's ``acc_norm``, which removes the advantage of short candidates),
the mean reciprocal rank, and whether the greedy continuation starts with the true value. A tie counts
against the true value, so a model that gives every candidate the same likelihood scores 0, not chance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.evaluator.probe.backend import ProbeBackend
from services.evaluator.stats import bootstrap_mean, compare, holm
from shared.errors import InvalidInput
from shared.schemas.experiment import EXPOSURE_BUCKETS
from shared.schemas.probe import PROBE_FORMS, TARGET_DELIMITER, ProbeItem, ProbeResult


def rank(values: list[float], answer: int) -> int:
    """1 + the other candidates at least as high as the true one."""
    return 1 + sum(v >= values[answer] for i, v in enumerate(values) if i != answer)


def starts_with(text: str, value: str) -> bool:
    return " ".join(text.split()).lower().startswith(" ".join(value.split()).lower())


def score_item(backend: ProbeBackend, item: ProbeItem, *, greedy_tokens: int) -> ProbeResult:
    continuations = [TARGET_DELIMITER + c for c in item.candidates]
    likelihoods = backend.loglikelihoods(item.stem, continuations)
    lengths = [len(c) for c in continuations]
    greedy = backend.greedy(item.stem, greedy_tokens)
    return ProbeResult(
        item=item.id, system=backend.name, loglikelihoods=likelihoods, lengths=lengths,
        rank=rank(likelihoods, item.answer),
        rank_norm=rank([ll / n for ll, n in zip(likelihoods, lengths)], item.answer),
        greedy=greedy, greedy_match=starts_with(greedy, item.candidates[item.answer]),
    )


def rates(results: list[ProbeResult], items: dict[str, ProbeItem], *, seed: int) -> dict[str, Any]:
    """Accuracy@1 (raw and per character), MRR and greedy exact match, each with its 95 % interval and n."""
    def interval(values: dict[str, float]) -> dict[str, Any]:
        return bootstrap_mean(values, seed=seed).model_dump()

    chance = [items[r.item].chance for r in results]
    return {
        "n": len(results),
        "chance": sum(chance) / len(chance) if chance else None,
        "accuracy": interval({r.item: float(r.rank == 1) for r in results}),
        "accuracy_norm": interval({r.item: float(r.rank_norm == 1) for r in results}),
        "mrr": interval({r.item: 1.0 / r.rank for r in results}),
        "greedy_match": interval({r.item: float(r.greedy_match) for r in results}),
    }


def groups(items: Iterable[ProbeItem]) -> dict[str, set[str]]:
    """Item ids by form, by exposure bucket and by both (``memorisation/5+``)."""
    out: dict[str, set[str]] = {"all": set()}
    for item in items:
        for key in ("all", item.form, f"bucket {item.bucket}", f"{item.form}/{item.bucket}"):
            out.setdefault(key, set()).add(item.id)
    order = ["all", *PROBE_FORMS, *(f"bucket {b}" for b in EXPOSURE_BUCKETS),
             *(f"{f}/{b}" for f in PROBE_FORMS for b in EXPOSURE_BUCKETS)]
    return {key: out[key] for key in order if key in out}


def summarise(items: list[ProbeItem], results: list[ProbeResult], *, seed: int,
              baselines: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every system's rates overall, by form and by exposure bucket; and each system against each
    baseline, paired on the same items (bootstrap of the difference in accuracy@1, exact McNemar)."""
    by_id = {i.id: i for i in items}
    by_system: dict[str, list[ProbeResult]] = {}
    for r in results:
        by_system.setdefault(r.system, []).append(r)
    parts = groups(items)
    systems = {name: {group: rates([r for r in rs if r.item in ids], by_id, seed=seed)
                      for group, ids in parts.items()}
               for name, rs in by_system.items()}
    correct = {name: {r.item: float(r.rank == 1) for r in rs} for name, rs in by_system.items()}
    comparisons = []
    for base in baselines:
        for name in by_system:
            if name == base or base not in correct:
                continue
            for group in ("all", *PROBE_FORMS):
                ids = parts.get(group, set())
                a = {i: v for i, v in correct[name].items() if i in ids}
                b = {i: v for i, v in correct[base].items() if i in ids}
                comparisons.append({"group": group, **compare(name, a, {i: v == 1.0 for i, v in a.items()}, base, b,
                                                              {i: v == 1.0 for i, v in b.items()},
                                                              seed=seed).model_dump()})
    # The probe's paired tests are one family: Holm-adjusted together, as the report's QA tests are.
    for c, adjusted in zip(comparisons, holm([c["mcnemar"]["p_value"] for c in comparisons])):
        c["mcnemar"]["p_holm"] = adjusted
    return {"items": len(items), "systems": systems, "comparisons": comparisons}


def agreement(ours: list[ProbeResult], theirs: list[ProbeResult], *, seed: int) -> dict[str, Any]:
    """The GGUF against the in-process model on the same items: how often the true value gets the same rank and
    the same candidate comes first, the paired difference in accuracy@1, and the largest |Δ log-likelihood|."""
    a, b = {r.item: r for r in ours}, {r.item: r for r in theirs}
    common = sorted(a.keys() & b.keys())
    if len(common) != len(a):
        raise InvalidInput(f"the in-process probe scored {len(common)} of the GGUF's {len(a)} items")

    def top(r: ProbeResult) -> int:
        return max(range(len(r.loglikelihoods)), key=r.loglikelihoods.__getitem__)

    correct = {name: {i: float(rs[i].rank == 1) for i in common} for name, rs in (("gguf", a), ("in_process", b))}
    difference = compare("gguf", correct["gguf"], {i: v == 1 for i, v in correct["gguf"].items()}, "in_process",
                         correct["in_process"], {i: v == 1 for i, v in correct["in_process"].items()}, seed=seed)
    return {
        "n": len(common),
        "same_rank": sum(a[i].rank == b[i].rank for i in common) / len(common),
        "same_top": sum(top(a[i]) == top(b[i]) for i in common) / len(common),
        "accuracy_difference": difference.model_dump(),
        "max_abs_loglikelihood_difference": max(abs(x - y) for i in common
                                                for x, y in zip(a[i].loglikelihoods, b[i].loglikelihoods)),
    }
