"""Both models on both halves: the probe (likelihood rank of the true value) and QA (the base condition),
paired on the same items, and the statistics of docs/extract.md.

QA is asked in process, not through the exported GGUF in Ollama: the same prompts as ``eval-scratch_base``
(services/evaluator/base_condition.py: the separator, k shots, ``Question: ... Answer:``), greedy with the
same stop string, and the chat demo's ``direct`` sampler (llama.cpp's repeat penalty over the generated
tokens, tests/exporter/test_chat.py holds it to llama.cpp). The weights are f32, not the served Q5_K_M, so
these figures pair the two models with each other through one path; they are not the report's
scratch_base figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import scipy.stats as sps
import torch

from services.evaluator import base_condition
from services.evaluator.probe.backends.torch_model import TorchBackend
from services.evaluator.probe.score import score_item
from services.evaluator.score import is_correct, score_responses
from services.evaluator.scoring.fabrication import Lexicon
from services.evaluator.scoring.facts import FactScorer
from services.evaluator.settings import EvalConfig
from services.evaluator.stats import bootstrap_mean, compare, holm
from services.exporter.direct import REPEAT_WINDOW, sample
from services.exporter.settings import Sampling
from shared.schemas.eval import BenchmarkItem, Response
from shared.schemas.extract import HALVES, ExtractOutcome
from shared.schemas.probe import ProbeItem

GREEDY = Sampling(temperature=0.0)
"""Greedy, with the served models' repeat penalty (the Modelfile's, exporter settings)."""


@torch.no_grad()
def answer(backend: TorchBackend, prompt: str, max_tokens: int) -> str:
    """The greedy continuation of ``prompt`` up to ``max_tokens`` tokens, cut at the base condition's stop."""
    ids = backend.tokenizer.encode(prompt)
    new: list[int] = []
    for _ in range(max_tokens):
        logits, _ = backend.model(torch.tensor([(ids + new)[-backend.block:]]))
        token = sample(logits[0, -1].float(), new[-REPEAT_WINDOW:], GREEDY, torch.Generator())
        if token == backend.tokenizer.eos:
            break
        new.append(token)
        text = backend.tokenizer.decode(new)
        if any(stop in text for stop in base_condition.STOP):
            break
    text = backend.tokenizer.decode(new)
    for stop in base_condition.STOP:
        text = text.split(stop)[0]
    return text.strip()


def probe_outcomes(backend: TorchBackend, model: str, checkpoint: str, items: list[ProbeItem],
                   halves: dict[str, str], greedy_tokens: int) -> list[ExtractOutcome]:
    out = []
    for item in items:
        result = score_item(backend, item, greedy_tokens=greedy_tokens)
        out.append(ExtractOutcome(model=model, checkpoint=checkpoint, measure="probe", item=item.id,
                                  half=halves[item.benchmark_id], correct=result.rank == 1,
                                  graded=1.0 / result.rank, text=result.greedy))
    return out


def qa_outcomes(backend: TorchBackend, model: str, checkpoint: str, items: list[BenchmarkItem],
                halves: dict[str, str], cfg: EvalConfig, seed: int, scorer: FactScorer,
                lexicon: Lexicon) -> list[ExtractOutcome]:
    prompts = base_condition.prompts(items, cfg, seed, lambda text: len(backend.tokenizer.encode(text)),
                                     backend.block)
    responses = [Response(id=i.id, response=answer(backend, prompts[i.id], cfg.max_tokens)) for i in items]
    scored = score_responses(list(zip(items, responses)), scorer, lexicon)
    return [ExtractOutcome(model=model, checkpoint=checkpoint, measure="qa", item=s.id, half=halves[s.id],
                           correct=is_correct(s), graded=s.accuracy, text=r.response)
            for s, r in zip(scored.items, responses)]


def by_item(outcomes: Iterable[ExtractOutcome], **where: str) -> dict[str, ExtractOutcome]:
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


def summarise(outcomes: list[ExtractOutcome], checkpoints: list[str], benchmark_of: dict[str, str], *,
              seed: int) -> dict[str, Any]:
    """Rates per model, checkpoint, measure and half; at the last checkpoint the paired tests, Holm-adjusted
    as one family: extraction − main per measure and half (McNemar), and per half the difference of
    differences (QA gain − probe gain per benchmark item, sign test)."""
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
        common = sorted(qa["main"].keys() & probe["main"].keys())
        did = {i: (qa["extract"][i].correct - qa["main"][i].correct) - (probe["extract"][i] - probe["main"][i])
               for i in common}
        tests.append({"name": f"{half}: QA gain − probe gain", "measure": "did", "half": half,
                      "difference": bootstrap_mean(did, seed=seed).model_dump(), "test": "exact sign test",
                      "discordant": [sum(d > 0 for d in did.values()), sum(d < 0 for d in did.values())],
                      "p": sign_test(list(did.values()))})
    for test, adjusted in zip(tests, holm([t["p"] for t in tests])):
        test["p_holm"] = adjusted
    return {"checkpoints": checkpoints, "rates": rates, "tests": tests, "family": len(tests)}
