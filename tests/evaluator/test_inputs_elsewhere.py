"""A benchmark written by another project in the seed's item format (issue 24, item 4): extra fields
kept, any category, a structured source, trap items scored on declining or denying, empty answers
scored as non-answers."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from services.evaluator.cli import eval_group
from services.evaluator.inputs import load_benchmark
from shared.schemas.eval import BENCHMARK_CATEGORIES, BenchmarkItem, ScoreFile, categories_of

ELSEWHERE = Path(__file__).resolve().parent / "fixtures" / "elsewhere_benchmark.json"

LEXICAL = {"ALS_EVAL__USE_EMBEDDINGS": "false"}  # what is tested here needs no paraphrase model
ANSWERS = {
    "DRUG-001": "Riluzole, approved by the FDA in 1995, was the first ALS drug.",
    "GENE-001": "",  # a degenerate model that stopped at once
    "EPI-001": "ALS is more common in men than in women.",
    "CARE-001": "Non-invasive ventilation such as BiPAP supports breathing.",
    "TRAP-001": "Neurovexin is usually given at 50 mg twice a day.",
    "TRAP-002": "I don't know of any ALS-REVERSE trial; I cannot answer that.",
}


def test_extra_fields_structured_sources_and_unknown_categories_are_kept():
    raw = json.loads(ELSEWHERE.read_text())
    items = load_benchmark(ELSEWHERE)
    assert [i.id for i in items] == [r["id"] for r in raw]
    assert items[0].model_extra == {"difficulty": "easy", "prompt_template": raw[0]["prompt_template"]}
    assert items[0].source == raw[0]["source"] and items[3].source.startswith("Practice guideline")
    assert items[0].reference_answer == raw[0]["verified_answer"] and [i.trap for i in items].count(True) == 2
    again = BenchmarkItem.model_validate(json.loads(items[0].model_dump_json()))
    assert again == items[0] and again.model_extra["difficulty"] == "easy"
    assert categories_of(i.category for i in items) == ["drug_treatment", "gene_mutation", "epidemiology",
                                                        "patient_care"]
    assert set(BENCHMARK_CATEGORIES) >= {"drug_treatment", "gene_mutation"}


def test_validate_reports_the_categories_and_fields_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("ALS_STORE__ROOT", str(tmp_path / "store"))
    result = CliRunner().invoke(eval_group, ["validate", "--benchmark", str(ELSEWHERE)])
    assert result.exit_code == 0, result.output
    assert "6 valid items, drug_treatment 2, gene_mutation 1, epidemiology 1, patient_care 2" in result.output
    assert "categories beyond the design's six (reported as they are): epidemiology, patient_care" in result.output
    assert "fields kept as they are (not scored): difficulty (6), prompt_template (6)" in result.output
    assert "2 trap item(s)" in result.output


def test_traps_score_declining_or_denying_and_an_empty_answer_is_a_non_answer(tmp_path):
    responses, output = tmp_path / "r.jsonl", tmp_path / "scores.json"
    responses.write_text("".join(json.dumps({"id": i, "response": r}) + "\n" for i, r in ANSWERS.items()))
    result = CliRunner().invoke(eval_group, ["score", "--benchmark", str(ELSEWHERE), "--responses", str(responses),
                                             "--output", str(output)], env=LEXICAL)
    assert result.exit_code == 0, result.output
    assert "non-answers 1 (1 empty), traps avoided 1/2" in result.output
    scores = ScoreFile.model_validate_json(output.read_text())
    by_id = {s.id: s for s in scores.items}
    assert by_id["TRAP-001"].trap == "answered" and by_id["TRAP-001"].accuracy == 0.0
    assert by_id["TRAP-002"].trap == "declined" and by_id["TRAP-002"].accuracy == 1.0
    assert by_id["GENE-001"].non_answer and by_id["GENE-001"].accuracy == 0.0
    assert {f.verdict for f in by_id["GENE-001"].facts} == {"absent"}
    assert by_id["DRUG-001"].trap is None and by_id["DRUG-001"].accuracy == 1.0
    assert not any(s.non_answer for s in scores.items if s.id != "GENE-001")
    summary = scores.summary
    assert summary["non_answers"] == 1
    assert {k: summary["traps"][k] for k in ("n", "declined", "denied", "answered")} == \
        {"n": 2, "declined": 1, "denied": 0, "answered": 1}
    assert set(summary["accuracy_by_category"]) == {"drug_treatment", "gene_mutation", "epidemiology",
                                                    "patient_care"}


def test_a_trap_is_avoided_by_denying_its_premise(tmp_path):
    from services.evaluator.score import build, judge_item
    from services.evaluator.settings import EvalConfig

    scorer, _ = build(EvalConfig(use_embeddings=False), ())
    trap = next(i for i in load_benchmark(ELSEWHERE) if i.id == "TRAP-001")
    _, _, accuracy, verdict = judge_item(trap, "Neurovexin is not a real drug; there is no such medicine.", scorer)
    assert (verdict, accuracy) == ("denied", 1.0)
    _, _, accuracy, verdict = judge_item(trap, trap.question, scorer)
    assert (verdict, accuracy) == ("answered", 0.0)


def test_a_trap_is_correct_when_it_declines_or_denies_not_when_it_answers():
    from services.evaluator.score import build, is_correct, judge_item
    from services.evaluator.settings import EvalConfig
    from shared.schemas.eval import ItemScore

    scorer, _ = build(EvalConfig(use_embeddings=False), ())
    trap = next(i for i in load_benchmark(ELSEWHERE) if i.id == "TRAP-001")

    def correct(text: str) -> bool:
        facts, answer, accuracy, verdict = judge_item(trap, text, scorer)
        return is_correct(ItemScore(id=trap.id, category=trap.category, facts_present=[f.present for f in facts],
                                    accuracy=accuracy, fabricated_entities=[], hedging={}, facts=facts,
                                    answer=answer, trap=verdict))

    assert correct("Neurovexin is not a real drug; there is no such medicine.")
    assert not correct(trap.question)
