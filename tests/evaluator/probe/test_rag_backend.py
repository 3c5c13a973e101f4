"""The RAG generator (the bundled Gemma 3 270M GGUF) on the probe, closed-book and reading the chunks retrieved
from a real Chroma index of sample documents."""

from __future__ import annotations

import json
import random
import re

import pytest

from services.evaluator.probe.backends import rag
from services.evaluator.probe.sample import stratified
from services.evaluator.rag import generate, pipeline
from services.evaluator.stages import probe_rag, rag_index
from shared import runs
from shared.errors import InvalidInput
from shared.runs import RunWriter
from shared.schemas.probe import ProbeItem, ProbeResult
from shared.store import LocalStore, sha256_file
from tests.evaluator.probe.tiny_trained import ranks
from tests.evaluator.test_rag import sample_docs, settings_for

YEAR = re.compile(r"\b(?:19|20)\d\d\b")
SENTENCE = re.compile(r"(?<=[.!?])\s+")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rag-probe")
    store = LocalStore(tmp / "artifacts")
    docs = sample_docs()

    def process(writer, scratch):
        writer.put_bytes("train.jsonl", "".join(d.model_dump_json() + "\n" for d in docs).encode())
        writer.put_bytes("val.jsonl", b"")

    runs.run_stage(store, "process", {}, [], process, work_dir=tmp / "work")
    settings = settings_for(tmp, store)  # one llama.cpp thread: on a busy machine two wait for each other
    settings = settings.model_copy(update={"rag": settings.rag.model_copy(update={"num_ctx": 1024, "top_k": 2})})
    rag_index.run(store, settings)
    return store, settings, docs


@pytest.fixture(scope="module")
def closed_book(indexed):
    return rag.closed_book(indexed[1])


def year_items(docs, n: int = 4, k: int = 4, seed: int = 0) -> list[dict]:
    """The first ``n`` indexed sentences that state a year: the text before it, the year and ``k`` other years."""
    rng = random.Random(seed)
    items = []
    for doc in docs:
        for sentence in SENTENCE.split(doc.text):
            found = YEAR.search(sentence)
            if found and len(sentence[:found.start()].split()) >= 4:
                year = found.group()
                candidates = [year, *rng.sample([str(y) for y in range(1980, 2026) if str(y) != year], k)]
                rng.shuffle(candidates)
                items.append({"stem": sentence[:found.start()].split("\n")[-1].strip(), "candidates": candidates,
                              "answer": candidates.index(year), "source": doc.id})
    return items[:n]


def test_retrieved_chunks_raise_the_stated_year_over_closed_book(indexed, closed_book):
    store, settings, docs = indexed
    with_chunks = rag.with_retrieval(store, settings, closed_book)
    items = year_items(docs)
    assert len(items) == 4
    gains, rag_top1, closed_top1 = [], 0, 0
    for item in items:
        conts = [" " + c for c in item["candidates"]]
        closed = closed_book.loglikelihoods(item["stem"], conts)
        read = with_chunks.loglikelihoods(item["stem"], conts)
        gains.append(read[item["answer"]] - closed[item["answer"]])
        rag_top1 += ranks(read, item["answer"]) == 1
        closed_top1 += ranks(closed, item["answer"]) == 1
    # The sentence stating the year is in the index, so reading the chunks must raise the year's likelihood on
    # every item, and the generator must name it first more often than closed-book (measured: 2 of 4 against 0;
    # the chunks state several years, and Gemma 270M copies the wrong one of them half the time).
    assert all(g > 0 for g in gains), gains
    assert rag_top1 >= 2 and rag_top1 > closed_top1, (rag_top1, closed_top1)


def test_the_rag_context_is_the_retrieved_chunks_then_the_stem(indexed, closed_book):
    store, settings, _ = indexed
    with_chunks = rag.with_retrieval(store, settings, closed_book)
    stem = "On this basis the FDA approved intravenous edaravone in"
    text = with_chunks.context(stem)
    assert text.startswith("[1] ") and text.endswith(f"\n\n{stem}") and "Question:" not in text
    assert "(source: sample-pmc-0002-abstract)" in text.split("\n\n[2]")[0]  # its own document comes first
    assert with_chunks.index_run == pipeline.latest_index(store).run and with_chunks.name == "rag"
    assert with_chunks.greedy(stem, 6).startswith(" May 2017")  # Gemma spells a number digit by digit
    assert closed_book.name == "closed_book"


def test_another_generator_is_read_from_the_blob_ollama_keeps_it_in(indexed, ollama_server):
    """A generator other than the bundled one (a GPU profile's 8B model) is scored through the GGUF blob of its
    Ollama model; one the server lacks is refused with how to get it."""
    settings = indexed[1].model_copy(update={"ollama_host": ollama_server.base_url})
    client = generate.connect(ollama_server.base_url)
    client.create(model="probe-generator", files={"model.gguf": client.create_blob(generate.bundled_gguf())})
    other = settings.model_copy(update={"rag": settings.rag.model_copy(update={"generator_model": "probe-generator"})})
    assert sha256_file(rag.generator_gguf(other)) == sha256_file(generate.bundled_gguf())
    absent = settings.model_copy(update={"rag": settings.rag.model_copy(update={"generator_model": "llama3.1:8b"})})
    with pytest.raises(InvalidInput, match="no model 'llama3.1:8b'; pull it"):
        rag.closed_book(absent)


def test_probe_rag_stage_scores_both_systems_on_one_stratified_sample(indexed):
    store, settings, docs = indexed
    every = [ProbeItem(id=f"year.{n}", benchmark_id=f"year{n}", fact_index=0, fact=item["candidates"][item["answer"]],
                       form="memorisation", stem=item["stem"], candidates=item["candidates"], answer=item["answer"],
                       value_type="year", source=item["source"], subject=None, in_train=True, train_docs=n % 2 * 4 + 1,
                       validation_docs=0, bucket="5+" if n % 2 else "1", wording_in_train=True)
             for n, item in enumerate(year_items(docs, n=6))]
    writer = RunWriter(store, "probe-items", {"fixture": "years"}, [])
    writer.put_bytes("items.jsonl", "".join(i.model_dump_json() + "\n" for i in every).encode())
    writer.publish()
    settings = settings.model_copy(update={"probe": settings.probe.model_copy(update={"rag_items": 4})})
    run, ran = probe_rag.run(store, settings)
    results = [ProbeResult.model_validate_json(x) for x in store.get_bytes(run.output("results.jsonl").key).splitlines()]
    chosen = [i.id for i in stratified(every, 4, settings.seed)]
    assert ran and run.metrics["items"] == 4 and run.metrics["of_items"] == 6
    for system in ("closed_book", "rag"):
        assert [r.item for r in results if r.system == system] == chosen
    retrieval = [json.loads(x) for x in store.get_bytes(run.output("retrieval.jsonl").key).splitlines()]
    assert [r["item"] for r in retrieval] == chosen and all(len(r["chunks"]) == 2 for r in retrieval)
    # Each stem is the start of an indexed sentence: retrieval finds its own document for most, and the chunks
    # (two of 128 tokens) before the stem raise the stated year's likelihood over closed-book.
    assert run.metrics["own_source_retrieved"] >= 0.75 and run.metrics["median_context_tokens"] > 200
    answer = {i.id: i.answer for i in every}
    by = {(r.system, r.item): r.loglikelihoods[answer[r.item]] for r in results}
    assert sum(by["rag", i] > by["closed_book", i] for i in chosen) >= 3
    assert run.upstream("rag-index") == pipeline.latest_index(store).run
    again, ran = probe_rag.run(store, settings)
    assert not ran and again.run == run.run
