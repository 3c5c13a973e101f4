"""The extraction arm (docs/extract.md): QA text written from training sentences for one half of the items
leaks no benchmark text and states no held-out fact; a second tiny model trained on the main shards plus
that text, measured beside the main one on both halves, paired, into the report's section."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from test_probe_items import sample_documents, split
from test_probe_stage import publish_corpus, read

from services.evaluator.exposure import count_documents, plain
from services.evaluator.extract.qa import WH, documents, half, question, write_pairs
from services.evaluator.inputs import load_benchmark
from services.evaluator.leakage import tokens
from services.evaluator.probe.items import Corpus, build_items
from services.evaluator.report import extract as extract_report
from services.evaluator.report.document import Table
from services.evaluator.settings import BENCHMARK, EvaluatorSettings
from services.evaluator.stages import extract_measure, extract_qa, probe_items
from services.processor.settings import ProcessorSettings
from services.processor.stages import extract_tokens
from services.trainer.model import GPT, GPTConfig
from shared import runs
from shared.errors import InvalidInput
from shared.runs import RunWriter
from shared.schemas.corpus import TokenShardsMeta
from shared.schemas.extract import ExtractOutcome, QaPair
from shared.store import LocalStore
from tests.evaluator.probe.tiny_trained import fit

torch.set_num_threads(1)
LEAK_N = 8


@pytest.fixture(scope="module")
def written():
    train, validation = split(sample_documents())
    benchmark = load_benchmark(BENCHMARK)
    built = build_items(benchmark, Corpus(train, validation), k=9, seed=1337)
    return {"train": train, "benchmark": benchmark, "items": built.items,
            "written": write_pairs(built.items, train, benchmark, seed=1337, leak_ngram=LEAK_N)}


def test_a_question_is_its_sentence_with_the_value_replaced_by_a_wh_phrase_of_its_type():
    sentence = "Riluzole was approved by the FDA in 1995 as the first drug for ALS."
    assert question(sentence, "Riluzole was approved by the FDA in", "1995", "year") == \
        "Riluzole was approved by the FDA in what year as the first drug for ALS?"
    assert question("The SOD1 gene was found in 1993.", "The SOD1 gene was found in", "1993", "year") == \
        "The SOD1 gene was found in what year?"
    # the value glued to more letters, or another sentence, is not this stem's value
    assert question("It was approved by the FDA in 1995s.", "It was approved by the FDA in", "1995", "year") is None
    assert question("Edaravone came later.", "It was approved by the FDA in", "1995", "year") is None


def test_halves_are_a_seeded_hash_of_the_item_and_every_item_is_in_one(written):
    halves = written["written"].halves
    assert set(halves) == {i.benchmark_id for i in written["items"]}
    assert all(halves[b] == half(b, 1337) for b in halves)
    counts = [sum(h == name for h in halves.values()) for name in ("qa_exposed", "qa_test")]
    assert min(counts) > 0.35 * len(halves)
    assert {b: half(b, 7) for b in halves} != halves  # another seed, another split


def test_qa_text_shares_no_ngram_with_any_benchmark_question_or_reference_answer(written):
    pairs = written["written"].pairs
    assert len(pairs) > 100
    banned = set()
    for item in written["benchmark"]:
        for text in (item.question, item.reference_answer):
            words = tokens(text)
            banned |= {tuple(words[i:i + LEAK_N]) for i in range(len(words) - LEAK_N + 1)}
    text = tokens(" ".join(d.text for d in documents(pairs)))
    assert not any(tuple(text[i:i + LEAK_N]) in banned for i in range(len(text) - LEAK_N + 1))
    dropped = written["written"].dropped
    assert dropped[f"shares a {LEAK_N}-word n-gram with a benchmark question or reference answer"] > 0


def test_qa_text_covers_only_exposed_items_and_states_no_held_out_fact(written):
    halves, pairs = written["written"].halves, written["written"].pairs
    assert {halves[p.benchmark_id] for p in pairs} == {"qa_exposed"}
    subjects = {i.benchmark_id: i.subject for i in written["items"]}
    for doc in documents(pairs):
        words = plain(doc.text)
        for item in written["benchmark"]:
            if halves.get(item.id) != "qa_test":
                continue
            for fact in (f for f in item.key_facts if f.counted):
                stated = count_documents([fact.text, *fact.aliases], [words])
                subject = subjects[item.id]
                assert not (stated and (subject is None or f" {subject} " in words)), (doc.id, item.id, fact.text)


def test_each_pair_is_a_training_sentence_read_back_with_its_value(written):
    """Putting the answer back in place of the wh-phrase gives the words of a sentence of its training
    document: the QA text says nothing the training split does not."""
    train = {d.id: " ".join(re.findall(r"\w+", d.text.lower())) for d in written["train"]}
    for pair in written["written"].pairs:
        back = pair.question.replace(f" {WH[pair.value_type]}", f" {pair.answer}", 1)
        assert " ".join(re.findall(r"\w+", back.lower())) in train[pair.source], pair.id


STEPS = 100


def publish_model(store: LocalStore, tmp, shards: str, seed: int, label: str):
    """A train run on the shards of run ``shards`` as the train stage publishes it (the trainer's GPT in a
    plain loop, tests/evaluator/probe/tiny_trained.py), with kept checkpoints at half and all of its steps."""
    source = runs.resolve(store, shards)
    for name in ("train.bin", "meta.json", "tokenizer.json"):
        runs.fetch(store, source.output(name), tmp / label / name)
    vocab = TokenShardsMeta.model_validate_json((tmp / label / "meta.json").read_text()).vocab_size
    torch.manual_seed(seed)
    config = GPTConfig(n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=vocab, dropout=0.0)
    ids = torch.from_numpy(np.fromfile(tmp / label / "train.bin", dtype=np.uint16).astype(np.int64))
    states = fit(GPT(config), ids, STEPS, (STEPS // 2, STEPS))
    writer = RunWriter(store, "train", {"fixture": "extract"},
                       runs.inputs_from(source, ["train.bin", "tokenizer.json"]))
    info = []
    for step, state in states.items():
        torch.save({"config": config.to_dict(), "model": state}, tmp / label / f"{step}.pt")
        writer.put_file(f"checkpoints/step{step:08d}/model.pt", tmp / label / f"{step}.pt")
        info.append({"name": f"step{step:08d}", "step": step, "tokens_seen": step * 16 * 64})
    writer.put_file("model.pt", tmp / label / f"{STEPS}.pt")
    writer.put_file("tokenizer.json", tmp / label / "tokenizer.json")
    writer.metrics.update(checkpoints=info, best_checkpoint=info[-1]["name"])
    return writer.publish()


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("extract")
    store = LocalStore(tmp / "artifacts")
    publish_corpus(store, tmp)
    benchmark = tmp / "questions.json"
    benchmark.write_text(json.dumps(json.loads(BENCHMARK.read_text())[::8]))
    common = {"work_dir": tmp / "work", "store": {"root": tmp / "artifacts"}}
    settings = EvaluatorSettings(**common, eval={"benchmark": benchmark, "max_tokens": 12, "use_embeddings": False})
    items, _ = probe_items.run(store, settings)
    qa, _ = extract_qa.run(store, settings.model_copy(update={"extract": settings.extract.model_copy(
        update={"items_run": items.run})}))
    tokenize = runs.latest(store, "tokenize")
    tokens_run, ran = extract_tokens.run(store, ProcessorSettings(**common, extract={"qa_run": qa.run,
                                                                                       "tokenize_run": tokenize.run}))
    main = publish_model(store, tmp, tokenize.run, 0, "main")
    extract = publish_model(store, tmp, tokens_run.run, 0, "extract")
    measure_settings = settings.model_copy(update={"extract": settings.extract.model_copy(
        update={"main_train_run": main.run, "extract_train_run": extract.run})})
    measured, measured_ran = extract_measure.run(store, measure_settings)
    return {"store": store, "tmp": tmp, "qa": qa, "tokens": tokens_run, "tokenize": tokenize, "main": main,
            "extract": extract, "measured": measured, "settings": measure_settings, "ran": (ran, measured_ran)}


@pytest.mark.slow
def test_extraction_shards_are_the_main_shards_plus_the_qa_text_with_the_main_tokenizer(arm):
    store, tokens_run, tokenize = arm["store"], arm["tokens"], arm["tokenize"]
    assert tokens_run.output("tokenizer.json").sha256 == tokenize.output("tokenizer.json").sha256
    assert tokens_run.output("val.bin").sha256 == tokenize.output("val.bin").sha256
    main_tokens = tokenize.output("train.bin").size // 2
    assert tokens_run.metrics["n_train_tokens"] == tokens_run.output("train.bin").size // 2
    assert tokens_run.metrics["n_qa_tokens"] == tokens_run.metrics["n_train_tokens"] - main_tokens > 0
    pairs = read(store, arm["qa"], "qa.jsonl", QaPair)
    assert tokens_run.metrics["qa_documents"] == len(pairs) > 0


@pytest.mark.slow
def test_both_models_are_measured_on_the_same_items_of_both_halves_and_reruns_skip(arm):
    store, measured = arm["store"], arm["measured"]
    assert arm["ran"] == (True, True)
    outcomes = read(store, measured, "results.jsonl", ExtractOutcome)
    halves = json.loads(store.get_bytes(arm["qa"].output("split.json").key))
    for measure in ("probe", "qa"):
        cells = {(o.model, o.checkpoint) for o in outcomes if o.measure == measure}
        assert cells == {(m, f"step{s:08d}") for m in ("main", "extract") for s in (STEPS // 2, STEPS)}
        items = {cell: tuple(sorted(o.item for o in outcomes if o.measure == measure
                                    and (o.model, o.checkpoint) == cell)) for cell in cells}
        assert len(set(items.values())) == 1
    qa_items = {o.item for o in outcomes if o.measure == "qa"}
    assert qa_items == set(halves) and {o.half for o in outcomes} == {"qa_exposed", "qa_test"}
    summary = json.loads(store.get_bytes(measured.output("summary.json").key))
    assert summary["family"] == len(summary["tests"]) == 6
    assert all(t["p"] <= t["p_holm"] <= 1 for t in summary["tests"])
    again, ran = extract_measure.run(store, arm["settings"])
    assert not ran and again.run == measured.run


@pytest.mark.slow
def test_measure_refuses_models_trained_on_other_shards(arm):
    settings = arm["settings"]
    swapped = settings.model_copy(update={"extract": settings.extract.model_copy(
        update={"main_train_run": arm["main"].run, "extract_train_run": arm["main"].run})})
    with pytest.raises(Exception, match="extract-tokens"):
        extract_measure.run(arm["store"], swapped)
    with pytest.raises(InvalidInput, match="both train runs"):
        extract_measure.run(arm["store"], settings.model_copy(update={"extract": settings.extract.model_copy(
            update={"main_train_run": None})}))


@pytest.mark.slow
def test_report_section_gives_every_rate_with_its_interval_and_the_holm_adjusted_family(arm):
    found = extract_report.latest(arm["store"])
    assert found[0].run == arm["measured"].run
    summary = extract_report.load(arm["store"], found, arm["tmp"])
    section = extract_report.section(summary, found[0].run)
    curve, tests = [b for b in section.blocks if isinstance(b, Table)]
    assert len(curve.rows) == 2 * 2 * 2  # checkpoints x measures x halves
    assert all("n=" in cell for row in curve.rows for cell in row[4:])
    assert [row[0] for row in tests.rows] == [t["name"] for t in summary["tests"]]
    assert section.blocks[-1].startswith(("Yes at this scale", "Not shown at this scale"))
