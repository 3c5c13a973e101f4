"""``eval-scratch_base`` against a real Ollama server serving a tiny exported model (here, beside the
exporter's session fixture that builds it): raw k-shot prompts, counted with the model's own tokenizer."""

from __future__ import annotations

import json

import ollama
import pytest
from tokenizers import Tokenizer

from services.evaluator import base_condition
from services.evaluator.settings import EvaluatorSettings, for_run
from services.evaluator.stages import eval as asking
from services.exporter.settings import ExporterSettings
from services.exporter.stages import serve
from shared.errors import InvalidInput
from shared.schemas.eval import Response

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served_run(exported, ollama_server):
    settings = ExporterSettings(work_dir=exported["root"] / "work", store={"root": exported["store"].root},
                                ollama_host=ollama_server.base_url, serve={"verify_tokens": 4})
    manifest, _ = serve.run(exported["store"], settings)
    return manifest


def test_the_base_condition_asks_the_served_model_raw_k_shot_and_stops_at_the_next_question(
        exported, ollama_server, served_run, tmp_path):
    store = exported["store"]
    settings = EvaluatorSettings(store={"root": store.root}, work_dir=tmp_path, ollama_host=ollama_server.base_url,
                                 eval={"max_tokens": 24, "num_thread": 1, "base_shots": 2})
    manifest, ran = asking.run(store, for_run(settings, system="scratch_base", limit=3, serve_run=served_run.run))
    assert ran and manifest.stage == "eval-scratch_base"
    assert {i.stage for i in manifest.inputs} == {"serve", "export"}
    prompts = json.loads(store.get_bytes(manifest.output("prompts.json").key))
    responses = [Response.model_validate_json(line)
                 for line in store.get_bytes(manifest.output("responses.jsonl").key).decode().splitlines()]
    assert sorted(r.id for r in responses) == sorted(prompts) and len(prompts) == 3
    assert all(r.system == "scratch_base" and "\nQuestion:" not in r.response for r in responses)
    assert manifest.settings["options"]["stop"] == base_condition.STOP and manifest.metrics["shots_min"] >= 0

    # Ollama reads the prompt as the tokenizer that budgeted it does: the separator is one special token.
    # (keep_alive=0 unloads the model after each call, so no cached prefix shortens the count.)
    tokenizer = Tokenizer.from_str(store.get_bytes(exported["manifest"].output("hf/tokenizer.json").key).decode())
    client = ollama.Client(host=ollama_server.base_url)
    tag = served_run.metrics["tags"][0]
    client.generate(model=tag, prompt="", keep_alive=0)
    for text in [base_condition.SEPARATOR, next(iter(prompts.values()))]:
        counted = client.generate(model=tag, prompt=text, raw=True, keep_alive=0,
                                  options={"num_predict": 1, "temperature": 0})
        assert counted.prompt_eval_count == len(tokenizer.encode(text).ids)
    assert len(tokenizer.encode(base_condition.SEPARATOR).ids) == 1

    again = asking.run(store, for_run(settings, system="scratch_base", limit=3, serve_run=served_run.run))
    assert again[1] is False, "the same model and prompts are not asked again"
    other = for_run(settings.model_copy(update={"eval": settings.eval.model_copy(update={"base_shots": 1})}),
                    system="scratch_base", limit=3, serve_run=served_run.run)
    assert asking.run(store, other)[0].fingerprint != manifest.fingerprint, "other shots, other prompts: asked again"


def test_the_base_condition_needs_a_serve_run_for_its_tokenizer(exported, tmp_path):
    settings = EvaluatorSettings(store={"root": exported["store"].root}, work_dir=tmp_path,
                                 eval={"scratch_model": "als-lm:latest"})
    with pytest.raises(InvalidInput, match="tokenizer.*serve run"):
        asking.run(exported["store"], for_run(settings, system="scratch_base", limit=1))
