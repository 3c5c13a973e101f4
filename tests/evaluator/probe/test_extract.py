"""The extraction arm (docs/extract.md): QA text written from training sentences for one half of the items
leaks no benchmark text and states no held-out fact; a second tiny model trained on the main shards plus
that text, measured beside the main one on both halves, paired, into the report's section."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from test_probe_items import sample_documents, split

from services.evaluator.exposure import count_documents, plain
from services.evaluator.extract.qa import WH, documents, half, question, write_pairs
from services.evaluator.inputs import load_benchmark
from services.evaluator.leakage import tokens
from services.evaluator.probe.items import Corpus, build_items
from services.evaluator.report import extract as extract_report
from services.evaluator.report.document import Table
from services.evaluator.settings import BENCHMARK, EvaluatorSettings
from services.evaluator.stages import extract_measure
from shared import runs
from shared.errors import InvalidInput, MissingArtifact
from shared.schemas.extract import ExtractOutcome, QaPair
from shared.store import LocalStore
from tests.test_experiment import SMOKE

LEAK_N = 8


def read(store, run, name, schema):
    return [schema.model_validate_json(x) for x in store.get_bytes(run.output(name).key).decode().splitlines() if x]


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


def test_over_seeds_pairs_each_seed_and_averages_the_differences_item_by_item():
    from services.evaluator.extract.measure import over_seeds

    right = {  # (model, seed, item) -> the true value ranks first; every item in the qa_test half
        ("main", 1, "a"): False, ("extract", 1, "a"): True, ("main", 1, "b"): True, ("extract", 1, "b"): True,
        ("main", 2, "a"): True, ("extract", 2, "a"): True, ("main", 2, "b"): True, ("extract", 2, "b"): False,
    }
    outcomes = [ExtractOutcome(model=m, seed=s, checkpoint="last", measure="probe", item=i, half="qa_test",
                               correct=c, graded=1.0 if c else 0.5) for (m, s, i), c in right.items()]
    outcomes.append(ExtractOutcome(model="main", seed=1, checkpoint="early", measure="probe", item="a",
                                   half="qa_test", correct=True, graded=1.0))  # another checkpoint: not read
    rows = over_seeds(outcomes, [1, 2], "last", seed=0)["rows"]
    assert rows["1|qa_test"]["main"]["estimate"] == 0.5 and rows["1|qa_test"]["extract"]["estimate"] == 1.0
    assert rows["1|qa_test"]["difference"]["estimate"] == 0.5 and rows["2|qa_test"]["difference"]["estimate"] == -0.5
    # item a: (+1 + 0) / 2, item b: (0 - 1) / 2; their mean over the two items
    assert rows["mean|qa_test"]["difference"]["estimate"] == 0.0 and rows["mean|qa_test"]["difference"]["n"] == 2
    assert rows["mean|qa_exposed"]["difference"]["n"] == 0


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    """`als-lm experiment-extract` on the experiment's smoke settings (tests/test_experiment.py), in a fresh
    root: it makes the main run it reuses, then the extraction arm, then the report."""
    root = tmp_path_factory.mktemp("extract")
    # Every eighth question keeps the probe and the QA text small (the tests above cover them all).
    benchmark = root / "questions.json"
    benchmark.write_text(json.dumps(json.loads(BENCHMARK.read_text())[::8]))
    config = root / "smoke.yaml"
    config.write_text(yaml.safe_dump(SMOKE | {"eval": SMOKE["eval"] | {"benchmark": str(benchmark)}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALS_")}
    proc = subprocess.run([sys.executable, "-m", "als_lm", "experiment-extract", "--config", str(config),
                           "--root", str(root)], env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    store = LocalStore(root / "artifacts")
    measured = runs.latest(store, "extract-measure")
    summary = json.loads(store.get_bytes(measured.output("summary.json").key))
    return {"store": store, "root": root, "measured": measured, "summary": summary,
            "main": runs.resolve(store, summary["main_train_run"]),
            "extract": runs.resolve(store, summary["extract_train_run"])}


@pytest.mark.slow
def test_extraction_shards_are_the_main_shards_plus_the_qa_text_with_the_main_tokenizer(arm):
    store = arm["store"]
    tokens_run = runs.resolve(store, arm["extract"].upstream("extract-tokens"))
    tokenize = runs.resolve(store, arm["main"].upstream("tokenize"))
    assert tokens_run.output("tokenizer.json").sha256 == tokenize.output("tokenizer.json").sha256
    assert tokens_run.output("val.bin").sha256 == tokenize.output("val.bin").sha256
    assert tokens_run.metrics["n_train_tokens"] == tokens_run.output("train.bin").size // 2
    assert tokens_run.metrics["n_qa_tokens"] == (tokens_run.metrics["n_train_tokens"]
                                                 - tokenize.output("train.bin").size // 2) > 0
    pairs = read(store, runs.resolve(store, tokens_run.upstream("extract-qa")), "qa.jsonl", QaPair)
    assert tokens_run.metrics["qa_documents"] == len(pairs) > 5
    assert arm["extract"].settings == arm["main"].settings  # the same preset, steps, checkpoints and seed


@pytest.mark.slow
def test_both_models_are_measured_on_the_same_items_of_both_halves(arm):
    store, measured, summary = arm["store"], arm["measured"], arm["summary"]
    outcomes = read(store, measured, "results.jsonl", ExtractOutcome)
    names = [c["name"] for c in arm["main"].metrics["checkpoints"]]
    assert summary["checkpoints"] == names == [c["name"] for c in arm["extract"].metrics["checkpoints"]]
    # the probe for both seeds of the smoke config, QA for the first (the one exported and asked)
    seeds = {"probe": (1337, 7), "qa": (1337,)}
    for measure in ("probe", "qa"):
        cells = {(o.model, o.seed, o.checkpoint) for o in outcomes if o.measure == measure}
        assert cells == {(m, s, n) for m in ("main", "extract") for s in seeds[measure] for n in names}
        items = {cell: tuple(sorted(o.item for o in outcomes if o.measure == measure
                                    and (o.model, o.seed, o.checkpoint) == cell)) for cell in cells}
        assert len(set(items.values())) == 1 and items[("main", 1337, names[-1])]
    # QA comes from each checkpoint's base-condition answers, served and scored as make experiment does
    for label in ("main", "extract"):
        for name, ref in summary["base_scores"][label].items():
            scored = runs.resolve(store, ref)
            asked = runs.resolve(store, scored.input("responses.jsonl").run)
            export = runs.resolve(store, runs.resolve(store, asked.upstream("serve")).upstream("export"))
            assert asked.stage == "eval-scratch_base" and export.settings["export"]["checkpoint"] == name
            assert export.upstream("train") == arm[label].run
    assert summary["family"] == len(summary["tests"]) == 6
    assert all(t["p"] <= t["p_holm"] <= 1 for t in summary["tests"])


@pytest.mark.slow
def test_every_other_seed_gets_an_extraction_model_trained_beside_the_first_and_probed(arm):
    store, summary = arm["store"], arm["summary"]
    [[main_7, extract_7]] = summary["seed_train_runs"]
    main_7, extract_7 = runs.resolve(store, main_7), runs.resolve(store, extract_7)
    assert main_7.settings["seed"] == extract_7.settings["seed"] == 7
    assert extract_7.upstream("extract-tokens") == arm["extract"].upstream("extract-tokens")
    assert main_7.upstream("tokenize") == arm["main"].upstream("tokenize")
    timings = json.loads((arm["root"] / "timings-extract.json").read_text())["stages_s"]
    assert timings["train the extraction model with seed 7 (background)"] > 0
    assert f"published {extract_7.run}" in (arm["root"] / "work" / "logs" / "extract-seed-7.log").read_text()
    spread = summary["seeds"]
    assert spread["seeds"] == [1337, 7] and spread["checkpoint"] == summary["checkpoints"][-1]
    for name in ("qa_exposed", "qa_test"):
        rows = [spread["rows"][f"{s}|{name}"] for s in (1337, 7)]
        assert all(r["main"]["n"] == r["extract"]["n"] == r["difference"]["n"] > 0 for r in rows)
        mean = spread["rows"][f"mean|{name}"]["difference"]["estimate"]
        assert mean == pytest.approx(sum(r["difference"]["estimate"] for r in rows) / 2)


@pytest.mark.slow
def test_measure_refuses_models_trained_on_other_shards(arm):
    settings = EvaluatorSettings(work_dir=arm["root"] / "work", store={"root": arm["root"] / "artifacts"},
                                 extract={"main_train_run": arm["main"].run, "extract_train_run": arm["main"].run})
    with pytest.raises(MissingArtifact, match="extract-tokens"):
        extract_measure.run(arm["store"], settings)
    [[main_7, _]] = arm["summary"]["seed_train_runs"]
    unpaired = settings.extract.model_copy(update={"extract_train_run": arm["extract"].run, "main_seed_runs": [main_7]})
    with pytest.raises(InvalidInput, match="each other seed needs both models"):
        extract_measure.run(arm["store"], settings.model_copy(update={"extract": unpaired}))
    with pytest.raises(InvalidInput, match="both train runs"):
        extract_measure.run(arm["store"], settings.model_copy(update={"extract": settings.extract.model_copy(
            update={"main_train_run": None})}))


@pytest.mark.slow
def test_report_has_the_section_with_every_rate_interval_and_the_holm_adjusted_family(arm):
    found = extract_report.latest(arm["store"], arm["main"].run)
    assert found[0].run == arm["measured"].run
    assert extract_report.latest(arm["store"], arm["extract"].run) is None, "measured against another model"
    summary = extract_report.load(arm["store"], found, arm["root"])
    section = extract_report.section(summary, found[0].run)
    curve, tests, seeds = [b for b in section.blocks if isinstance(b, Table)]
    assert len(curve.rows) == len(summary["checkpoints"]) * 2 * 2  # checkpoints x measures x halves
    assert [row[0] for row in seeds.rows] == ["1337", "1337", "7", "7", "mean over 2 seeds", "mean over 2 seeds"]
    assert all("n=" in row[-1] for row in seeds.rows)
    assert all("n=" in cell for row in curve.rows for cell in row[4:])
    assert [row[0] for row in tests.rows] == [t["name"] for t in summary["tests"]]
    assert section.blocks[-1].startswith(("Yes at this scale", "Not shown at this scale"))
    report = runs.latest(arm["store"], "report")
    text = arm["store"].get_bytes(report.output("report.md").key).decode()
    assert extract_report.TITLE in text
    headline = text.split("## About this report")[0]
    assert f"Extractable or not (the extraction arm): {extract_report.verdict(summary['tests'])}" in headline
