"""The n-gram baseline: proper distributions over the tokenizer's vocabulary, and a bigram model that prefers
what the training tokens follow with."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from services.evaluator.probe.backends.ngram import NgramBackend
from services.evaluator.probe.score import rank, score_item
from services.evaluator.probe.tokens import ProbeTokenizer
from shared.schemas.probe import ProbeItem

TEXTS = ["Riluzole was approved in 1995 for amyotrophic lateral sclerosis.",
         "Edaravone was approved in 2017 for amyotrophic lateral sclerosis.",
         "Tofersen lowers SOD1 protein in amyotrophic lateral sclerosis."] * 20


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("ngram")
    tok = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.save(str(out / "tokenizer.json"))
    eos = tok.token_to_id("<|eos|>")
    np.asarray([i for t in TEXTS for i in (*tok.encode(t).ids, eos)], dtype=np.uint16).tofile(out / "train.bin")
    return out


@pytest.mark.parametrize("order", [1, 2])
def test_each_next_token_distribution_sums_to_one(shards, order):
    tokenizer = ProbeTokenizer(shards / "tokenizer.json")
    model = NgramBackend("n", shards / "train.bin", tokenizer, order=order, add_k=0.5)
    prev = tokenizer.encode(" lateral")[-1]
    total = sum(math.exp(model.logprob(prev, t)) for t in range(model.vocab))
    assert total == pytest.approx(1.0, abs=1e-9)


def test_bigram_follows_the_training_text_where_the_unigram_only_counts_words(shards):
    tokenizer = ProbeTokenizer(shards / "tokenizer.json")
    unigram, bigram = (NgramBackend(f"ngram-{o}", shards / "train.bin", tokenizer, order=o, add_k=0.01)
                       for o in (1, 2))
    item = ProbeItem(id="q.0.mem", benchmark_id="q", fact_index=0, fact="sclerosis", form="memorisation",
                     stem="Riluzole was approved in 1995 for amyotrophic lateral",
                     candidates=["Riluzole", "sclerosis", "amyotrophic"], answer=1, value_type="phrase",
                     source="d", subject="riluzole", in_train=True, train_docs=1, validation_docs=0, bucket="1",
                     wording_in_train=True)
    scored = score_item(bigram, item, greedy_tokens=4)
    assert scored.rank == 1 and scored.greedy_match and scored.greedy.startswith(" sclerosis")
    # The unigram model ranks by frequency alone: every candidate word occurs equally often here, so the
    # ranking follows the number of tokens, never the stem.
    assert unigram.loglikelihoods("anything at all", [" sclerosis"]) == unigram.loglikelihoods("Riluzole", [" sclerosis"])


def test_ties_count_against_the_true_value():
    assert rank([-1.0, -1.0, -2.0], 0) == 2
    assert rank([-0.5, -1.0, -2.0], 0) == 1
    assert rank([-3.0, -1.0, -2.0], 0) == 3
