"""The bundled benchmark, `als-lm eval validate`, and bad input to `als-lm eval score` (file mode)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from services.evaluator.cli import eval_group
from services.evaluator.inputs import InputError, load_benchmark
from services.evaluator.settings import BENCHMARK

# Design §8.1: category -> (min, max) items.
SEED_COUNTS = {"drug_treatment": (25, 40), "gene_mutation": (20, 30), "diagnostic_criteria": (15, 25),
               "clinical_trials": (15, 25), "disease_mechanisms": (15, 25), "temporal_accuracy": (10, 15)}


def test_bundled_benchmark_follows_the_design():
    items = load_benchmark(BENCHMARK)
    assert len(items) >= 150
    counts = Counter(i.category for i in items)
    for category, (low, high) in SEED_COUNTS.items():
        assert low <= counts[category] <= high, category
    assert all(2 <= len(i.key_facts) <= 5 and i.source.strip() for i in items)


def _item(**over):
    item = {"id": "drug-001", "category": "drug_treatment", "question": "How does riluzole work?",
            "reference_answer": "It inhibits glutamate release.", "key_facts": ["glutamate"], "source": "FDA label"}
    return {**item, **over}


@pytest.mark.parametrize("items,message", [
    ([{k: v for k, v in _item().items() if k != "source"}], "item drug-001: source: Field required"),
    ([_item(), _item()], "duplicate id(s): drug-001"),
    ([_item(key_facts=[])], "item drug-001: key_facts"),
    ([_item(key_facts=["  "])], "item drug-001: key fact 0 text: is blank"),
    ([_item(key_facts=["glutamate", {"text": "x", "polarity": "maybe"}])], "item drug-001: key fact 1 polarity:"),
    ([_item(category="nutrition")], "item drug-001: category"),
])
def test_validate_rejects_bad_benchmarks_naming_the_item(tmp_path, items, message):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(items))
    result = CliRunner().invoke(eval_group, ["validate", "--benchmark", str(path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError) and message in str(result.exception)


def test_validate_accepts_the_bundled_benchmark():
    result = CliRunner().invoke(eval_group, ["validate"])
    assert result.exit_code == 0, result.output
    assert "152 valid items" in result.output


@pytest.mark.parametrize("lines,message", [
    ([{"id": "drug-001", "response": "glutamate"}, {"id": "nope-9", "response": "x"}], "unknown id(s) nope-9"),
    ([], "is empty"),
    ([{"id": "drug-001", "response": "   "}], "empty response for drug-001"),
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
