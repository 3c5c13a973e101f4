"""Both models on both halves: the probe (likelihood rank of the true value, in process) and QA (the base
condition's answers, asked through the same path as the main experiment's ``scratch_base``: exported, served
in Ollama, asked raw and k-shot, scored), paired on the same items, and the statistics of docs/extract.md."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import scipy.stats as sps

from services.evaluator.probe.backends.torch_model import TorchBackend
from services.evaluator.probe.score import score_item
from services.evaluator.score import is_correct
from services.evaluator.stats import bootstrap_mean, compare, holm
from shared.schemas.eval import Response, ScoreFile
from shared.schemas.extract import HALVES, ExtractOutcome
from shared.schemas.probe import ProbeItem


def probe_outcomes(backend: TorchBackend, model: str, seed: int, checkpoint: str, items: list[ProbeItem],
                   halves: dict[str, str], greedy_tokens: int) -> list[ExtractOutcome]:
    out = []
    for item in items:
        result = score_item(backend, item, greedy_tokens=greedy_tokens)
        out.append(ExtractOutcome(model=model, seed=seed, checkpoint=checkpoint, measure="probe", item=item.id,
                                  half=halves[item.benchmark_id], correct=result.rank == 1,
                                  graded=1.0 / result.rank, text=result.greedy))
    return out


def qa_outcomes(scores: ScoreFile, responses: list[Response], model: str, seed: int, checkpoint: str,
                halves: dict[str, str]) -> list[ExtractOutcome]:
    """A base-condition score run's items that are in a half, strictly correct or not (``is_correct``)."""
    answers = {r.id: r.response for r in responses}
    return [ExtractOutcome(model=model, seed=seed, checkpoint=checkpoint, measure="qa", item=s.id, half=halves[s.id],
                           correct=is_correct(s), graded=s.accuracy, text=answers.get(s.id, ""))
            for s in scores.items if s.id in halves]


def by_item(outcomes: Iterable[ExtractOutcome], **where: str | int) -> dict[str, ExtractOutcome]:
    return {o.item: o for o in outcomes if all(getattr(o, k) == v for k, v in where.items())}


def per_benchmark(probe: dict[str, ExtractOutcome], benchmark_of: dict[str, str]) -> dict[str, float]:
    """Probe accuracy per benchmark item: the mean over its probe items."""
    sums: dict[str, list[float]] = {}
    for item, outcome in probe.items():
        sums.setdefault(benchmark_of[item], []).append(float(outcome.correct))
    return {b: sum(v) / len(v) for b, v in sums.items()}


def sign_test(differences: list[float]) -> float:
    """Exact two-sided sign test over the non-zero paired differences."""
    up, down = sum(d > 0 for d in differences), sum(d < 0 for d in differences)
    return 1.0 if up + down == 0 else float(sps.binomtest(up, up + down, 0.5).pvalue)


def over_seeds(outcomes: list[ExtractOutcome], seeds: list[int], checkpoint: str, *, seed: int) -> dict[str, Any]:
    """The probe at ``checkpoint`` for every training seed, per half: each model's accuracy and extraction − main
    per seed, and extraction − main averaged over the seeds item by item (the interval by bootstrap over items,
    so the seeds' spread and the items' both count)."""
    rows: dict[str, Any] = {}
    for half in HALVES:
        per_item: dict[str, list[float]] = {}
        for s in seeds:
            main, extract = (by_item(outcomes, model=m, seed=s, checkpoint=checkpoint, measure="probe", half=half)
                             for m in ("main", "extract"))
            common = sorted(main.keys() & extract.keys())
            rows[f"{s}|{half}"] = {
                m: bootstrap_mean({i: float(got[i].correct) for i in common}, seed=seed).model_dump()
                for m, got in (("main", main), ("extract", extract))}
            difference = {i: float(extract[i].correct) - float(main[i].correct) for i in common}
            rows[f"{s}|{half}"]["difference"] = bootstrap_mean(difference, seed=seed).model_dump()
            for i, d in difference.items():
                per_item.setdefault(i, []).append(d)
        mean = {i: sum(d) / len(d) for i, d in per_item.items() if len(d) == len(seeds)}
        rows[f"mean|{half}"] = {"difference": bootstrap_mean(mean, seed=seed).model_dump()}
    return {"seeds": seeds, "checkpoint": checkpoint, "rows": rows}


def summarise(outcomes: list[ExtractOutcome], checkpoints: list[str], benchmark_of: dict[str, str], seeds: list[int],
              *, seed: int) -> dict[str, Any]:
    """Rates per model, checkpoint, measure and half of the first seed; at the last checkpoint the paired tests,
    Holm-adjusted as one family: extraction − main per measure and half (McNemar), and per half the difference
    of differences (QA gain − probe gain per benchmark item, sign test); and the probe over every seed."""
    spread = over_seeds(outcomes, seeds, checkpoints[-1], seed=seed)
    outcomes = [o for o in outcomes if o.seed == seeds[0]]
    rates: dict[str, Any] = {}
    for checkpoint in checkpoints:
        for measure in ("probe", "qa"):
            for half in HALVES:
                for model in ("main", "extract"):
                    got = by_item(outcomes, model=model, checkpoint=checkpoint, measure=measure, half=half)
                    rates[f"{model}|{checkpoint}|{measure}|{half}"] = bootstrap_mean(
                        {i: float(o.correct) for i, o in got.items()}, seed=seed).model_dump()
    last = checkpoints[-1]
    tests: list[dict[str, Any]] = []
    for measure in ("qa", "probe"):
        for half in HALVES:
            main, extract = (by_item(outcomes, model=m, checkpoint=last, measure=measure, half=half)
                             for m in ("main", "extract"))
            comparison = compare("extract", {i: float(o.correct) for i, o in extract.items()},
                                 {i: o.correct for i, o in extract.items()},
                                 "main", {i: float(o.correct) for i, o in main.items()},
                                 {i: o.correct for i, o in main.items()}, seed=seed)
            tests.append({"name": f"{measure}, {half}: extraction − main", "measure": measure, "half": half,
                          "difference": comparison.difference.model_dump(), "test": "exact McNemar",
                          "discordant": [comparison.mcnemar.a_only, comparison.mcnemar.b_only],
                          "p": comparison.mcnemar.p_value})
    for half in HALVES:
        qa = {m: by_item(outcomes, model=m, checkpoint=last, measure="qa", half=half) for m in ("main", "extract")}
        probe = {m: per_benchmark(by_item(outcomes, model=m, checkpoint=last, measure="probe", half=half),
                                  benchmark_of) for m in ("main", "extract")}
        common = sorted(qa["main"].keys() & qa["extract"].keys() & probe["main"].keys() & probe["extract"].keys())
        did = {i: (qa["extract"][i].correct - qa["main"][i].correct) - (probe["extract"][i] - probe["main"][i])
               for i in common}
        tests.append({"name": f"{half}: QA gain − probe gain", "measure": "did", "half": half,
                      "difference": bootstrap_mean(did, seed=seed).model_dump(), "test": "exact sign test",
                      "discordant": [sum(d > 0 for d in did.values()), sum(d < 0 for d in did.values())],
                      "p": sign_test(list(did.values()))})
    for test, adjusted in zip(tests, holm([t["p"] for t in tests])):
        test["p_holm"] = adjusted
    return {"checkpoints": checkpoints, "rates": rates, "tests": tests, "family": len(tests), "seeds": spread}
