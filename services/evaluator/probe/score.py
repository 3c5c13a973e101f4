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

import numpy as np

from services.evaluator.probe.backend import BatchedBackend, ProbeBackend
from services.evaluator.stats import bootstrap_mean, compare, holm
from shared.errors import InvalidInput
from shared.schemas.experiment import EXPOSURE_BUCKETS
from shared.schemas.probe import PROBE_FORMS, TARGET_DELIMITER, ProbeItem, ProbeResult, ProbeSystem


def rank(values: list[float], answer: int) -> int:
    """1 + the other candidates at least as high as the true one."""
    return 1 + sum(v >= values[answer] for i, v in enumerate(values) if i != answer)


def starts_with(text: str, value: str) -> bool:
    return " ".join(text.split()).lower().startswith(" ".join(value.split()).lower())


def score_items(backend: ProbeBackend, items: list[ProbeItem], *, greedy_tokens: int | None) -> list[ProbeResult]:
    """Every item ranked by the backend's likelihoods (in one call where it scores many at once); the greedy
    continuation only with ``greedy_tokens`` (the dense curve's snapshots need only the ranks)."""
    requests = [(item.stem, [TARGET_DELIMITER + c for c in item.candidates]) for item in items]
    stems = [item.stem for item in items]
    if isinstance(backend, BatchedBackend):
        likelihoods = backend.loglikelihoods_many(requests)
        continued = backend.greedy_many(stems, greedy_tokens) if greedy_tokens else [None] * len(items)
    else:
        likelihoods = [backend.loglikelihoods(*request) for request in requests]
        continued = [backend.greedy(stem, greedy_tokens) if greedy_tokens else None for stem in stems]
    results = []
    for item, (_, continuations), values, greedy in zip(items, requests, likelihoods, continued):
        lengths = [len(c) for c in continuations]
        results.append(ProbeResult(
            item=item.id, system=backend.name, loglikelihoods=values, lengths=lengths,
            rank=rank(values, item.answer),
            rank_norm=rank([ll / n for ll, n in zip(values, lengths)], item.answer),
            greedy=greedy, greedy_match=None if greedy is None else starts_with(greedy, item.candidates[item.answer]),
        ))
    return results


def score_item(backend: ProbeBackend, item: ProbeItem, *, greedy_tokens: int) -> ProbeResult:
    return score_items(backend, [item], greedy_tokens=greedy_tokens)[0]


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
        "greedy_match": interval({r.item: float(r.greedy_match) for r in results if r.greedy_match is not None}),
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
              baselines: tuple[str, ...] = (), systems: list[str] | None = None) -> dict[str, Any]:
    """Every system's rates overall, by form and by exposure bucket; and each system against each
    baseline, paired on the same items (bootstrap of the difference in accuracy@1, exact McNemar).
    ``systems``: only these (None: all); the dense curve's points are summarised by ``curve``."""
    by_id = {i.id: i for i in items}
    by_system: dict[str, list[ProbeResult]] = {}
    for r in results:
        if systems is None or r.system in systems:
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


def curve(items: list[ProbeItem], results: list[ProbeResult], systems: list[ProbeSystem], *,
          seed: int) -> list[dict[str, Any]]:
    """The learning curve: per point of training (a step; the seeds that reached it are listed), accuracy@1 by
    group (all, form, exposure bucket, both) for each seed, their mean and spread over seeds (sd, min, max), and
    for all items and each form the mean's 95 % interval over items (bootstrap of each item's accuracy averaged
    over the seeds), with n."""
    parts = groups(items)
    correct: dict[str, dict[str, float]] = {}
    for r in results:
        correct.setdefault(r.system, {})[r.item] = float(r.rank == 1)
    by_step: dict[int, list[ProbeSystem]] = {}
    for s in systems:
        if s.on_curve and s.step is not None:
            by_step.setdefault(s.step, []).append(s)
    out = []
    for step in sorted(by_step):
        members = by_step[step]  # in the order the systems were scored: the main run first
        entry: dict[str, Any] = {"step": step, "tokens_seen": members[0].tokens_seen,
                                 "seeds": [s.seed for s in members], "systems": [s.name for s in members],
                                 "groups": {}}
        for group, ids in parts.items():
            ordered = sorted(ids)
            matrix = np.array([[correct[s.name][i] for i in ordered] for s in members])
            by_seed = matrix.mean(axis=1)
            entry["groups"][group] = {
                "n": len(ordered), "by_seed": [float(v) for v in by_seed], "mean": float(by_seed.mean()),
                "sd": float(by_seed.std(ddof=1)) if len(members) > 1 else None,
                "min": float(by_seed.min()), "max": float(by_seed.max()),
            }
            if group in ("all", *PROBE_FORMS):
                entry["groups"][group]["interval"] = bootstrap_mean(dict(zip(ordered, matrix.mean(axis=0))),
                                                                    seed=seed).model_dump()
        out.append(entry)
    return out
