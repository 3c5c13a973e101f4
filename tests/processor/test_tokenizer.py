"""The BPE tokenizer: special token ids, term validation and the retrain decision, token shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer, models

from services.processor.settings import ProcessorSettings, TokenizerConfig
from services.processor.tokenizer import (
    SPECIAL_TOKENS,
    choose_tokenizer,
    train_bpe,
    validate_terms,
    write_shard,
)
from shared.settings import SettingsError, load
from tests.processor.raw import sample_lines

TERMS = [("Drug names", "riluzole"), ("Gene names", "C9orf72"), ("Drug names", "xylophonazine"),
         ("Diagnostic terms", "upper motor neuron")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    texts = [json.loads(line)["text"] for line in sample_lines()]
    path = tmp_path_factory.mktemp("tok") / "corpus.txt"
    path.write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    return path, texts


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_bpe(corpus[0], vocab_size=2000, min_frequency=2)


def test_special_tokens_have_ids_0_to_3_and_text_round_trips(tokenizer):
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    text = "Tofersen (Qalsody) lowers SOD1 — naïve “quotes” and 12.5 mg/kg.\n\nNew paragraph."
    assert tokenizer.decode(tokenizer.encode(text).ids) == text
    assert tokenizer.get_vocab_size() == 2000


def test_validation_flags_words_split_into_more_than_two_tokens(tokenizer):
    report = validate_terms(tokenizer, TERMS, fragment_tokens=2)
    rows = {r["term"]: r for r in report["rows"]}
    assert rows["riluzole"]["n_tokens"] == 1 and not rows["riluzole"]["fragmented"]
    assert rows["xylophonazine"]["fragmented"]  # never in the corpus
    # Cut by the pre-tokenizer (letters | digits, one piece per word), not by a small vocabulary:
    assert rows["C9orf72"]["n_pieces"] == 4 and not rows["C9orf72"]["fragmented"]
    assert not rows["upper motor neuron"]["fragmented"]
    assert report["fragmented"] == 1 and report["fragmented_fraction"] == 0.25


def test_too_many_fragmented_terms_trigger_the_retrain_and_it_is_recorded(corpus):
    cfg = TokenizerConfig(vocab_size=1000, fallback_vocab_size=3000, max_fragmented=0.1)
    tokenizer, report = choose_tokenizer(corpus[0], cfg, TERMS)
    assert [a["requested_vocab_size"] for a in report["attempts"]] == [1000, 3000]
    assert tokenizer.get_vocab_size() == report["vocab_size"] == 3000
    assert "retrained at 3000" in report["decision"]


def test_shards_are_uint16_documents_separated_by_eos(tokenizer, corpus, tmp_path):
    texts = corpus[1][:20]
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    n = write_shard(tokenizer, jsonl, tmp_path / "train.bin")

    ids = np.fromfile(tmp_path / "train.bin", dtype=np.uint16)
    assert len(ids) == n and ids[-1] == 1
    docs = np.split(ids, np.flatnonzero(ids == 1) + 1)[:-1]
    assert [tokenizer.decode(d[:-1].tolist()) for d in docs] == texts


def test_vocabulary_over_uint16_is_a_clear_error(tmp_path):
    big = Tokenizer(models.BPE(vocab={f"t{i}": i for i in range(70000)}, merges=[]))
    (tmp_path / "d.jsonl").write_text('{"text": "t1"}\n')
    with pytest.raises(ValueError, match="does not fit uint16"):
        write_shard(big, tmp_path / "d.jsonl", tmp_path / "d.bin")
    with pytest.raises(SettingsError, match="tokenizer.vocab_size"):
        load(ProcessorSettings, tokenizer={"vocab_size": 70000})
