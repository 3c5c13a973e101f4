"""The bundled benchmark, `als-lm eval validate`, and bad input to `als-lm eval score` (file mode)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.evaluator.cli import eval_group
from services.evaluator.coverage import absent_facts
from services.evaluator.inputs import InputError, load_benchmark
from services.evaluator.settings import BENCHMARK
from shared import runs
from shared.store import LocalStore

SAMPLE = Path(__file__).resolve().parents[2] / "services" / "scraper" / "sample"

# Design §8.1: category -> (min, max) items.
SEED_COUNTS = {"drug_treatment": (25, 40), "gene_mutation": (20, 30), "diagnostic_criteria": (15, 25),
               "clinical_trials": (15, 25), "disease_mechanisms": (15, 25), "temporal_accuracy": (10, 15)}


def test_bundled_benchmark_follows_the_design():
    items = load_benchmark(BENCHMARK)
    assert len(items) >= 150
    counts = Counter(i.category for i in items)
    for category, (low, high) in SEED_COUNTS.items():
        assert low <= counts[category] <= high, category
    # A "when" question has one fact to score; every item has at least one that counts.
    assert all(len(i.key_facts) <= 5 and any(f.counted for f in i.key_facts) and i.source.strip() for i in items)


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def test_no_counted_key_fact_repeats_its_own_question():
    """An answer that echoes the question must earn nothing: such facts are judged but not counted."""
    echoes = [(i.id, name) for i in load_benchmark(BENCHMARK) for f in i.key_facts if f.counted
              for name in [f.text, *f.aliases] if _words(name) in _words(i.question)]
    assert echoes == []


# Present-tense status questions ("Is X approved?", "... still available?") change with time.
STATUS = re.compile(r"^(?:is|are)\b.*\b(?:approved|available|authori[sz]ed)\b|\bstatus\b|\bbeing tested\b", re.IGNORECASE)


def test_items_whose_truth_can_change_are_dated():
    items = load_benchmark(BENCHMARK)
    undated_status = [i.id for i in items if STATUS.search(i.question) and not i.volatile]
    assert undated_status == []
    assert all(i.as_of is not None for i in items if i.volatile)
    assert sum(i.volatile for i in items) >= 10


def test_edit_history_is_well_formed_and_explains_every_option():
    """No fact is changed silently: an item that uses any option beyond a plain fact list says why."""
    items = load_benchmark(BENCHMARK)
    for item in items:
        dates = [h.date for h in item.history]
        assert dates == sorted(dates) and all(d <= date.today() for d in dates), item.id
        assert all(h.change.strip() and h.reason.strip() for h in item.history), item.id
        options = (item.answer_type != "open" or not item.answerable or item.volatile
                   or any(f.aliases or f.polarity != "affirm" or f.tolerance is not None
                          or f.accepted_range is not None or not f.counted for f in item.key_facts))
        assert item.history or not options, f"{item.id} uses key-fact options without a history entry"
    assert sum(bool(i.history) for i in items) >= 100


def test_the_audit_page_lists_every_history_entry():
    """docs/benchmark-audit.md is a copy of the history for reading; a new correction must appear there too."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "benchmark-audit.md").read_text()
    missing = [(i.id, h.change) for i in load_benchmark(BENCHMARK) for h in i.history
               if f"| {i.id} | {h.change.replace('|', chr(92) + '|')} |" not in page]
    assert missing == []


def test_bundled_corpus_leaves_the_unanswerable_items_unstated():
    """answerable=false is a claim about the bundled corpus: each such item has a counted fact it never states."""
    items = load_benchmark(BENCHMARK)
    absent = absent_facts(items, _sample_documents())
    missing = {(a.item_id, a.index) for a in absent}
    for item in (i for i in items if not i.answerable):
        assert any((item.id, n) in missing for n, f in enumerate(item.key_facts) if f.counted), item.id
    assert sum(not i.answerable for i in items) == 4
    assert len(absent) < 40  # the benchmark is written against this corpus


def _sample_documents() -> list[str]:
    return [json.loads(line)["text"] for path in sorted(SAMPLE.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def _item(**over):
    item = {"id": "drug-001", "category": "drug_treatment", "question": "How does riluzole work?",
            "reference_answer": "It inhibits glutamate release.", "key_facts": ["glutamate"], "source": "FDA label"}
    return {**item, **over}


@pytest.mark.parametrize("items,message", [
    ([{k: v for k, v in _item().items() if k != "source"}], "item drug-001: source: Field required"),
    ([_item(), _item()], "item drug-001: duplicate id"),
    ([_item(key_facts=[])], "item drug-001: key_facts"),
    ([_item(key_facts=["  "])], "item drug-001: key fact 0 text: is blank"),
    ([_item(key_facts=["glutamate", {"text": "x", "polarity": "maybe"}])], "item drug-001: key fact 1 polarity:"),
    ([_item(category=" ")], "item drug-001: category: is blank"),
    ([_item(source={})], "item drug-001: source: is blank"),
    ([_item(volatile=True)], "item drug-001 is volatile (its truth can change) but has no as_of date"),
    ([_item(answer_type="yes_no")], "item drug-001: expected_answer (yes or no) is required for yes_no items"),
    ([_item(key_facts=[{"text": "40%", "accepted_range": [50, 30]}])],
     "item drug-001: key fact 0: accepted_range (50.0, 30.0) has low above"),
])
def test_validate_rejects_bad_benchmarks_naming_the_item(tmp_path, items, message):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(items))
    result = CliRunner().invoke(eval_group, ["validate", "--benchmark", str(path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError) and message in str(result.exception)


def test_validate_accepts_the_bundled_benchmark(tmp_path, monkeypatch):
    monkeypatch.setenv("ALS_STORE__ROOT", str(tmp_path / "empty-store"))
    result = CliRunner().invoke(eval_group, ["validate"])
    assert result.exit_code == 0, result.output
    assert "152 valid items" in result.output
    assert "key facts not checked against a corpus (no published run of stage 'process'" in result.output


CORPUS_ITEMS = [
    _item(key_facts=["inhibits glutamate release", "Bunina bodies"]),
    _item(id="drug-017", key_facts=[{"text": "TUDCA", "aliases": ["taurursodiol"]}, "Relyvrio 2022",
                                    {"text": "Relyvrio 2024", "counted": False}]),
]
# Sentence-level: "Relyvrio 2022" is stated in one sentence; "Relyvrio ... 2024" only across two.
CORPUS = ("Riluzole reduces the release of glutamate at synapses.\n\n"
          "Sodium phenylbutyrate and taurursodiol: the FDA approved Relyvrio in September 2022. It was "
          "withdrawn.\n\nIn 2024 the market changed.\n")


def test_validate_lists_key_facts_the_corpus_never_states(tmp_path):
    bench, corpus = tmp_path / "bench.json", tmp_path / "corpus.txt"
    bench.write_text(json.dumps(CORPUS_ITEMS))
    corpus.write_text(CORPUS)
    result = CliRunner().invoke(eval_group, ["validate", "--benchmark", str(bench), "--corpus", str(corpus)])
    assert result.exit_code == 0, result.output
    assert f"key facts the corpus never states ({corpus}): 2 of 5 (1 counted)" in result.output
    assert "drug-001 key fact 1: Bunina bodies\n" in result.output
    assert "drug-017 key fact 2: Relyvrio 2024 (not counted)" in result.output
    assert "inhibits glutamate release" not in result.output and "TUDCA" not in result.output


def test_validate_reads_the_latest_process_corpus_from_the_store(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "artifacts")
    manifest, _ = runs.run_stage(store, "process", {}, [],
                                 lambda writer, scratch: writer.put_bytes("corpus.txt", CORPUS.encode()),
                                 work_dir=tmp_path / "work")
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(CORPUS_ITEMS))
    monkeypatch.setenv("ALS_STORE__ROOT", str(tmp_path / "artifacts"))
    result = CliRunner().invoke(eval_group, ["validate", "--benchmark", str(bench)])
    assert result.exit_code == 0, result.output
    assert f"key facts the corpus never states ({manifest.run}/corpus.txt): 2 of 5" in result.output


@pytest.mark.parametrize("lines,message", [
    ([{"id": "drug-001", "response": "glutamate"}, {"id": "nope-9", "response": "x"}], "unknown id(s) nope-9"),
    ([], "is empty"),
    ([{"id": "drug-001"}], "line 1: response: Field required"),
])
def test_score_refuses_bad_responses_and_writes_nothing(tmp_path, lines, message):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([_item()]))
    responses = tmp_path / "r.jsonl"
    responses.write_text("".join(json.dumps(line) + "\n" for line in lines))
    output = tmp_path / "scores.json"
    output.write_text("previous")
    result = CliRunner().invoke(eval_group, ["score", "--benchmark", str(bench), "--responses", str(responses),
                                             "--output", str(output)])
    assert result.exit_code != 0 and message in str(result.exception)
    assert output.read_text() == "previous"


def test_missing_responses_are_listed(tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([_item(), _item(id="drug-002")]))
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"id": "drug-001", "response": "glutamate"}) + "\n")
    result = CliRunner().invoke(eval_group, ["score", "--benchmark", str(bench), "--responses", str(responses),
                                             "--output", str(tmp_path / "s.json")])
    assert "no response for 1 item(s): drug-002" in str(result.exception)
