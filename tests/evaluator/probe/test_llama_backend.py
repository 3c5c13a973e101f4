"""The llama.cpp probe backend on a trained tiny model's exported GGUFs: the same log-likelihoods, rankings and
greedy continuations as the model in-process."""

from __future__ import annotations

import pytest

from services.evaluator.probe.backends.llama import LlamaBackend, split
from shared.errors import InvalidInput
from tests.evaluator.probe.tiny_trained import cloze_items, order, ranks, trained

DELIMITER = " "

pytestmark = pytest.mark.slow  # trains a model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return trained(tmp_path_factory.getbasetemp() / "tiny-trained")


@pytest.fixture(scope="module")
def items():
    return cloze_items(10)


def logit_tolerance(variant: str, scale: float) -> float:
    """The export stage's bound on |Δlogit| (services/exporter/export.py: f32 within one fp16 unit of the largest
    logit, because llama.cpp's GELU reads an fp16 table; f16 within ten, its weights having 11 significant bits)."""
    unit = 2**-11 * scale
    return max(1e-3, unit) if variant == "f32" else 10 * unit


@pytest.mark.parametrize("variant", ["f32", "f16"])
def test_gguf_ranks_candidates_as_the_in_process_model_does(model, items, variant):
    backend = LlamaBackend.from_gguf(getattr(model, variant), n_ctx=128, threads=1)
    top1 = 0
    for item in items:
        continuations = [DELIMITER + c for c in item["candidates"]]
        ours = backend.loglikelihoods(item["stem"], continuations)
        reference, worst = [], 0.0
        for c, got in zip(continuations, ours):
            want, length, scale = model.reference(item["stem"], c)
            # log-softmax moves by at most twice the largest logit error (log-sum-exp is 1-Lipschitz in the max
            # norm), so a continuation of m tokens by at most 2·m·Δlogit.
            tolerance = 2 * length * logit_tolerance(variant, scale)
            assert got == pytest.approx(want, abs=tolerance), (item["id"], c)
            reference.append(want)
            worst = max(worst, tolerance)
        # Candidates further apart than the tolerance on both sides keep their order.
        for i, j in zip(order(reference), order(reference)[1:]):
            if reference[i] - reference[j] > 2 * worst:
                assert ours[i] > ours[j], (item["id"], item["candidates"][i], item["candidates"][j])
        assert ranks(ours, item["answer"]) == ranks(reference, item["answer"])
        top1 += ranks(reference, item["answer"]) == 1
    # The rankings compared are a trained model's, not noise: it puts the true word first well above chance.
    assert top1 / len(items) > 3 / len(items[0]["candidates"])


def test_greedy_continuation_is_the_in_process_argmax(model, items):
    backend = LlamaBackend.from_gguf(model.f32, n_ctx=128, threads=1)
    for item in items[:5]:
        assert backend.greedy(item["stem"], 6) == model.greedy(item["stem"], 6)
    assert backend.greedy(items[0]["stem"], 0) == ""


def test_scores_do_not_depend_on_what_was_scored_before(model, items):
    """The context stays in the KV cache between candidates and items; it must never leak into a score."""
    first, second = items[0], items[1]
    conts = [DELIMITER + c for c in second["candidates"]]
    fresh = LlamaBackend.from_gguf(model.f32, n_ctx=128, threads=1).loglikelihoods(second["stem"], conts)
    warm = LlamaBackend.from_gguf(model.f32, n_ctx=128, threads=1)
    warm.loglikelihoods(first["stem"], [DELIMITER + c for c in first["candidates"]])
    warm.greedy(second["stem"] + " and", 5)  # shares the stem, then runs past it
    assert warm.loglikelihoods(second["stem"], conts) == pytest.approx(fresh, abs=1e-4)
    assert warm.loglikelihoods(second["stem"], conts[::-1]) == pytest.approx(fresh[::-1], abs=1e-4)


def test_trailing_space_of_the_context_moves_to_the_continuation(model):
    assert split(model.tokens, "riluzole was approved in ", "1995") == split(model.tokens, "riluzole was approved in",
                                                                           " 1995")
    prefix, cont = split(model.tokens, "riluzole", " and edaravone")
    assert prefix == model.tokens("riluzole") and prefix + cont == model.tokens("riluzole and edaravone")


def test_a_context_longer_than_the_model_is_refused_naming_it(model):
    backend = LlamaBackend.from_gguf(model.f32, name="tiny", n_ctx=32, threads=1)
    with pytest.raises(InvalidInput, match="does not fit tiny's context of 32 tokens"):
        backend.loglikelihoods("ALS " * 40, [" riluzole"])
    with pytest.raises(InvalidInput, match="at least one token"):
        backend.loglikelihoods("ALS", [""])


def test_a_missing_or_broken_gguf_is_named(tmp_path):
    with pytest.raises(InvalidInput, match="absent.gguf does not exist"):
        LlamaBackend.from_gguf(tmp_path / "absent.gguf", threads=1)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(InvalidInput, match="cannot load .*broken.gguf"):
        LlamaBackend.from_gguf(broken, threads=1)
