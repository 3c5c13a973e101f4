"""``als-lm eval run``: question selection, fact recall@k, and a published scratch run against real Ollama."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from als_lm.cli import cli
from services.evaluator.inputs import load_benchmark
from services.evaluator.rag import generate
from services.evaluator.runner import facts_in_context, select
from services.evaluator.settings import BENCHMARK, EvaluatorSettings, for_run
from services.evaluator.stages import eval as asking
from shared import runs
from shared.runs import RunNotFound
from shared.schemas.eval import Response, RetrievedChunk


def test_limit_takes_the_first_questions_round_robin_across_categories():
    items = load_benchmark(BENCHMARK)
    chosen = select(items, 8)
    categories = [i.category for i in chosen]
    assert len(set(categories[:6])) == 6, "the first six picks cover all six categories"
    first_of = {}
    for item in items:
        first_of.setdefault(item.category, item.id)
    assert [i.id for i in chosen[:6]] == list(first_of.values())
    assert select(items, None) == items and select(items, 10_000) == items


def test_facts_in_context_match_normalised_text_not_word_fragments():
    chunk = RetrievedChunk(chunk_id="d#0", source_id="d", text="Riluzole INHIBITS glutamate-release; TDP-43 aggregates.",
                           distance=0.1)
    found = facts_in_context(["inhibits glutamate release", "TARDBP", "glut", "sodium channels"], [chunk])
    assert found == [True, True, False, False]


def test_scratch_run_without_a_serve_run_says_which_command_makes_one(local_store, tmp_path):
    settings = EvaluatorSettings(store={"backend": "local", "root": local_store.root}, work_dir=tmp_path)
    with pytest.raises(RunNotFound, match="als-lm export ollama"):
        asking.run(local_store, for_run(settings, system="scratch", limit=1))


@pytest.mark.slow
def test_eval_run_cli_publishes_scratch_responses_and_skips_an_identical_rerun(
        local_store, tmp_path, ollama_server, monkeypatch):
    generate.ensure_generator(generate.connect(ollama_server.base_url), "gemma3-270m")  # stands in for als-lm
    for name, value in {"ALS_STORE__ROOT": str(local_store.root), "ALS_WORK_DIR": str(tmp_path / "work"),
                        "ALS_OLLAMA_HOST": ollama_server.base_url, "ALS_EVAL__SCRATCH_MODEL": "gemma3-270m",
                        "ALS_EVAL__MAX_TOKENS": "8", "ALS_EVAL__NUM_THREAD": "1"}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["eval", "run", "--system", "scratch", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "eval-scratch: published" in result.output
    run = runs.latest(local_store, "eval-scratch")
    responses = [Response.model_validate_json(line)
                 for line in local_store.get_bytes(run.output("responses.jsonl").key).decode().splitlines()]
    assert [r.id for r in responses] == [i.id for i in select(load_benchmark(BENCHMARK), 3)]
    assert all(r.system == "scratch" and r.model == "gemma3-270m" and r.latency_s > 0 and r.retrieved is None
               for r in responses)
    assert run.settings["options"]["temperature"] == 0 and run.settings["model_digest"]
    assert run.metrics["questions"] == 3 and "retrieval.json" not in {o.name for o in run.outputs}

    again = CliRunner().invoke(cli, ["eval", "run", "--system", "scratch", "--limit", "3"])
    assert again.exit_code == 0 and "skipped (unchanged)" in again.output


@pytest.mark.slow
def test_a_scratch_model_missing_from_ollama_names_the_command_that_creates_it(local_store, tmp_path, ollama_server):
    settings = EvaluatorSettings(store={"backend": "local", "root": local_store.root}, work_dir=tmp_path,
                                 ollama_host=ollama_server.base_url, eval={"scratch_model": "als-lm:latest"})
    with pytest.raises(ValueError, match="no model 'als-lm:latest'.*als-lm export ollama"):
        asking.run(local_store, for_run(settings, system="scratch", limit=1))
    assert runs.runs(local_store, "eval-scratch") == [], "nothing is published for a failed run"


def test_unknown_system_is_refused(local_store, tmp_path):
    settings = EvaluatorSettings(store={"backend": "local", "root": local_store.root}, work_dir=tmp_path)
    with pytest.raises(ValueError, match="system"):
        for_run(settings, system="both")
    with pytest.raises(ValueError, match="no system chosen"):
        asking.run(local_store, settings)


def test_eval_fingerprint_covers_the_questions_asked_not_their_key_facts():
    from services.evaluator.runner import questions_sha256

    items = select(load_benchmark(BENCHMARK), 3)
    corrected = [items[0].model_copy(update={"key_facts": items[0].key_facts[:1], "reference_answer": "fixed"}),
                 *items[1:]]
    reworded = [items[0].model_copy(update={"question": items[0].question + " Explain."}), *items[1:]]
    assert questions_sha256(corrected) == questions_sha256(items)
    assert questions_sha256(reworded) != questions_sha256(items)
    assert questions_sha256(items[:2]) != questions_sha256(items)


@pytest.mark.slow
def test_closed_book_asks_the_generator_without_context_and_a_key_fact_fix_does_not_ask_again(
        local_store, tmp_path, ollama_server):
    import json

    from services.evaluator.runner import CLOSED_BOOK_PROMPT

    bench = tmp_path / "questions.json"
    items = json.loads(BENCHMARK.read_text())
    bench.write_text(json.dumps(items))
    settings = EvaluatorSettings(store={"backend": "local", "root": local_store.root}, work_dir=tmp_path,
                                 ollama_host=ollama_server.base_url,
                                 eval={"benchmark": bench, "max_tokens": 4, "num_thread": 1})
    settings = for_run(settings, system="closed_book", limit=2)
    first, ran = asking.run(local_store, settings)
    assert ran and first.inputs == [] and first.settings["prompt"] == CLOSED_BOOK_PROMPT
    assert first.settings["model"] == settings.rag.generator_model
    responses = local_store.get_bytes(first.output("responses.jsonl").key).decode().splitlines()
    assert [Response.model_validate_json(r).system for r in responses] == ["closed_book", "closed_book"]

    items[0]["key_facts"] = items[0]["key_facts"][:1]  # a benchmark correction of a key fact
    bench.write_text(json.dumps(items))
    again, ran = asking.run(local_store, settings)
    assert not ran and again.run == first.run

    # The thread count is no part of the answers: another count finds the run (and its journal), and
    # the answers asked again with it are the same bytes.
    two = settings.model_copy(update={"eval": settings.eval.model_copy(update={"num_thread": 2})})
    again, ran = asking.run(local_store, two)
    assert not ran and again.run == first.run
    forced, ran = asking.run(local_store, two, force=True)
    rerun = local_store.get_bytes(forced.output("responses.jsonl").key).decode().splitlines()
    assert ran and [Response.model_validate_json(r).response for r in rerun] == [
        Response.model_validate_json(r).response for r in responses]


def test_an_interrupted_run_asks_only_the_questions_it_had_not_answered(tmp_path):
    from services.evaluator.runner import ask_all

    items = select(load_benchmark(BENCHMARK), 3)
    journal = tmp_path / "answers.jsonl"
    asked = []

    def open_system():
        def answer(question):
            asked.append(question)
            return f"answer to {question}", None, 0.5
        return answer

    ask_all(items[:1], open_system, "closed_book", "m", journal)
    journal.write_text(journal.read_text() + '{"id": "cut sho')  # a kill mid-line
    responses = ask_all(items, open_system, "closed_book", "m", journal)
    assert asked == [i.question for i in items]  # the first question was not asked twice
    assert [r.id for r in responses] == [i.id for i in items]
    opened = []
    assert ask_all(items, lambda: opened.append(1), "closed_book", "m", journal) == responses
    assert opened == [], "nothing left to ask: the system is not even opened"


def test_an_empty_answer_is_paired_for_scoring_as_a_non_answer():
    from services.evaluator.inputs import match

    items = select(load_benchmark(BENCHMARK), 2)
    responses = [Response(id=items[0].id, response=""), Response(id=items[1].id, response="riluzole")]
    assert [r.response for _, r in match(items, responses)] == ["", "riluzole"]
