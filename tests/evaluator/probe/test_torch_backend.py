"""The in-process backend's batched, KV-cached scoring against the reference it replaced: one forward of each
whole candidate sequence (cut from the left to the block) and a greedy continuation that rereads its window
every token. Same log-likelihoods (float rounding), same ranks, same greedy text."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from services.evaluator.probe.backends.torch_model import TorchBackend
from services.evaluator.probe.score import rank
from services.evaluator.probe.tokens import ProbeTokenizer
from shared.schemas.model import ModelConfig
from shared.schemas.probe import TARGET_DELIMITER
from tests.evaluator.probe.tiny_trained import cloze_items, train
from tests.exporter.conftest import sample_texts, train_tokenizer


@functools.cache
def backend(root) -> TorchBackend:
    texts = sample_texts()
    tokenizer = train_tokenizer(texts)
    tokenizer.save(str(root / "tokenizer.json"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train(texts, tokenizer, steps=60)
    finally:
        torch.set_num_threads(threads)
    config = ModelConfig.model_validate({**model.config.to_dict(), "bias": True})
    return TorchBackend("tiny", config, model, ProbeTokenizer(root / "tokenizer.json"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return backend(tmp_path_factory.mktemp("torch-backend"))


@torch.no_grad()
def reference_loglikelihoods(b: TorchBackend, context: str, continuations: list[str]) -> list[float]:
    out = []
    for continuation in continuations:
        ctx, cont = b.tokenizer.split(context, continuation)
        seq = (ctx + cont)[-(b.block + 1):]
        x = torch.tensor([seq[:-1]])
        logits, _ = b.model(x, x)
        logprobs = F.log_softmax(logits[0].float(), dim=-1)
        out.append(float(sum(logprobs[len(seq) - 1 - len(cont) + i, t] for i, t in enumerate(cont))))
    return out


@torch.no_grad()
def reference_greedy(b: TorchBackend, context: str, max_tokens: int) -> str:
    ids, _ = b.tokenizer.split(context, "")
    new: list[int] = []
    for _ in range(max_tokens):
        logits, _ = b.model(torch.tensor([(ids + new)[-b.block:]]))
        token = int(logits[0, -1].argmax())
        if token == b.tokenizer.eos:
            break
        new.append(token)
    return b.tokenizer.decode(new)


def requests() -> list[tuple[str, list[str]]]:
    """Cloze items of the sample, and the same stems made longer than the 64-token block (cut from the left)."""
    items = cloze_items(40)
    short = [(i["stem"], [TARGET_DELIMITER + c for c in i["candidates"]]) for i in items]
    long = [(" ".join(i["stem"] for i in items[:12]) + " " + stem, conts) for stem, conts in short[:6]]
    return short + long


def test_batched_cached_loglikelihoods_equal_one_forward_per_candidate(tiny):
    asked = requests()
    assert max(len(tiny.tokenizer.encode(context)) for context, _ in asked) > tiny.block  # the cut is exercised
    batched = tiny.loglikelihoods_many(asked)
    for (context, continuations), got in zip(asked, batched):
        expected = reference_loglikelihoods(tiny, context, continuations)
        assert got == pytest.approx(expected, abs=2e-4)
        assert [rank(got, i) for i in range(len(got))] == [rank(expected, i) for i in range(len(expected))]
    assert tiny.loglikelihoods(*asked[3]) == pytest.approx(batched[3], abs=1e-5)  # alone or in a batch


def test_batched_greedy_equals_rereading_the_window_every_token(tiny):
    contexts = [context for context, _ in requests()]
    expected = [reference_greedy(tiny, c, 8) for c in contexts]
    assert tiny.greedy_many(contexts, 8) == expected
    assert [tiny.greedy(c, 8) for c in contexts[-3:]] == expected[-3:]  # the window slides past the block
    assert any(expected) and tiny.greedy_many(contexts[:2], 0) == ["", ""]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU profile's probe is checked on one")
def test_on_the_gpu_the_scores_match_the_cpu_reference(tiny):
    gpu = TorchBackend("tiny", tiny.config, copy.deepcopy(tiny.model).cuda(), tiny.tokenizer)
    asked = requests()
    for (context, continuations), got in zip(asked, gpu.loglikelihoods_many(asked)):
        assert got == pytest.approx(reference_loglikelihoods(tiny, context, continuations), abs=1e-3)
    contexts = [context for context, _ in asked]
    assert gpu.greedy_many(contexts, 8) == [reference_greedy(tiny, c, 8) for c in contexts]
