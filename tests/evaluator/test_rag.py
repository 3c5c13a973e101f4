"""The RAG baseline against the real things: MiniLM offline, Chroma embedded and as a `chroma run`
server, Gemma 3 270M created in a real Ollama server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.evaluator.inputs import load_benchmark
from services.evaluator.rag import generate, index
from services.evaluator.rag.embeddings import Embedder
from services.evaluator.rag.pipeline import open_collection, prompt
from services.evaluator.runner import questions_sha256, select
from services.evaluator.settings import EvalConfig, EvaluatorSettings, RagConfig, for_run
from services.evaluator.stages import eval as asking
from services.evaluator.stages import rag_index
from shared import runs, servers
from shared.schemas.corpus import CleanDocument
from shared.schemas.eval import Response, RetrievedChunk
from shared.servers import ServerError

ROOT = Path(__file__).resolve().parents[2]
DOCS = {"sample-pmc-0001-abstract", "sample-pmc-0001-body", "sample-pmc-0002-abstract", "sample-pmc-0003-abstract",
        "sample-web-edu-007"}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder("all-MiniLM-L6-v2")


def sample_docs() -> list[CleanDocument]:
    docs = []
    for path in sorted((ROOT / "services/scraper/sample").glob("*.jsonl")):
        for line in path.open():
            raw = json.loads(line)
            if raw["id"] in DOCS:
                docs.append(CleanDocument(id=raw["id"], source=raw["source"], title=raw["title"], text=raw["text"],
                                          category=raw["metadata"]["category"]))
    return docs


def settings_for(tmp_path: Path, store, **rag) -> EvaluatorSettings:
    return EvaluatorSettings(
        store={"backend": "local", "root": store.root}, work_dir=tmp_path / "work",
        rag=RagConfig(chunk_tokens=128, chunk_overlap=16, top_k=3, **rag),
        eval=EvalConfig(max_tokens=24, num_thread=1),
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, embedder):
    """A store holding a `process` run of five sample documents and the `rag-index` run built from it."""
    from shared.store import LocalStore

    tmp = tmp_path_factory.mktemp("rag")
    store = LocalStore(tmp / "artifacts")
    docs = sample_docs()
    assert {d.id for d in docs} == DOCS

    def process(writer, scratch):
        writer.put_bytes("train.jsonl", "".join(d.model_dump_json() + "\n" for d in docs[1:]).encode())
        writer.put_bytes("val.jsonl", (docs[0].model_dump_json() + "\n").encode())

    runs.run_stage(store, "process", {}, [], process, work_dir=tmp / "work")
    settings = settings_for(tmp, store)
    manifest, ran = rag_index.run(store, settings)
    assert ran
    return store, settings, manifest


def test_index_publishes_chunks_and_a_chroma_directory_that_answers_queries(indexed, embedder, tmp_path):
    store, settings, manifest = indexed
    names = {o.name for o in manifest.outputs}
    assert "chunks.jsonl" in names and "chroma/chroma.sqlite3" in names
    chunks = store.get_bytes(manifest.output("chunks.jsonl").key).decode().splitlines()
    assert manifest.metrics["chunks"] == len(chunks) and manifest.metrics["documents"] == len(DOCS)
    assert all(json.loads(c)["n_tokens"] <= 128 for c in chunks)

    # A reader elsewhere (another work dir) fetches the published directory and queries it.
    reader = settings.model_copy(update={"work_dir": tmp_path / "reader"})
    collection = open_collection(store, reader, embedder, manifest)
    assert collection.count() == len(chunks)
    assert collection.metadata["embedding_model"] == "all-MiniLM-L6-v2" and collection.metadata["embedding_dim"] == 384
    top = index.query(collection, embedder, "What is the mechanism of action of riluzole?", 3)
    assert top[0].source_id.startswith("sample-pmc-0001") and "riluzole" in top[0].text.lower()
    assert top[0].distance <= top[1].distance <= top[2].distance

    _, ran = rag_index.run(store, settings)
    assert not ran, "an unchanged corpus and settings must not be indexed again"


def test_server_mode_loads_the_published_index_into_a_chroma_server_once(indexed, embedder, chroma_server):
    store, settings, manifest = indexed
    served = settings.model_copy(update={"rag": settings.rag.model_copy(
        update={"chroma_mode": "server", "chroma_url": chroma_server.base_url, "collection": "als-served"})})
    with pytest.raises(index.IndexMismatch, match="no collection 'als-served'"):
        open_collection(store, served, embedder, manifest)  # the published run holds `als-corpus` only
    served = served.model_copy(update={"rag": served.rag.model_copy(update={"collection": "als-corpus"})})
    collection = open_collection(store, served, embedder, manifest)
    assert collection.metadata["index_run"] == manifest.run
    assert collection.count() == manifest.metrics["chunks"]
    top = index.query(collection, embedder, "How is ALS diagnosed?", 3)
    assert any(c.source_id == "sample-web-edu-007" for c in top)

    client = index.server(chroma_server.base_url)
    before = client.get_collection("als-corpus").id
    open_collection(store, served, embedder, manifest)
    assert client.get_collection("als-corpus").id == before, "an up-to-date collection must not be reloaded"


@pytest.mark.parametrize("metadata, problem", [
    ({"embedding_model": "nomic-embed-text", "embedding_dim": 768}, "was built with 'nomic-embed-text' \\(768"),
    ({"embedding_model": "all-MiniLM-L6-v2", "embedding_dim": 768}, "\\(768 dimensions\\)"),
    (None, "records no embedding model"),
])
def test_a_collection_from_another_embedding_model_is_refused_not_replaced(indexed, embedder, chroma_server,
                                                                          metadata, problem):
    store, settings, manifest = indexed
    client = index.server(chroma_server.base_url)
    name = f"other-{abs(hash(str(metadata))) % 10**6}"
    foreign = client.create_collection(name, metadata=metadata, embedding_function=None)
    foreign.add(ids=["a"], embeddings=[[0.1] * 768], documents=["from another model"])
    served = settings.model_copy(update={"rag": settings.rag.model_copy(
        update={"chroma_mode": "server", "chroma_url": chroma_server.base_url, "collection": name})})
    with pytest.raises(index.IndexMismatch, match=problem):
        open_collection(store, served, embedder, manifest)
    assert client.get_collection(name).count() == 1, "the foreign collection must be left as it was"


def test_chroma_server_down_names_how_to_start_it():
    with pytest.raises(ServerError, match="chroma run"):
        index.server(f"http://127.0.0.1:{servers.free_port()}")


def test_ollama_down_names_how_to_start_it():
    with pytest.raises(ServerError, match="ollama serve"):
        generate.connect(f"http://127.0.0.1:{servers.free_port()}")


@pytest.mark.slow
def test_unknown_generator_model_is_refused(ollama_server):
    client = generate.connect(ollama_server.base_url)
    with pytest.raises(ValueError, match="no model 'mistral:7b-instruct'.*ollama pull"):
        generate.ensure_generator(client, "mistral:7b-instruct")


def test_prompt_is_the_seeds_template_with_numbered_attributed_chunks():
    chunk = RetrievedChunk(chunk_id="d#0", source_id="d", title="Riluzole", text="It inhibits glutamate.",
                                 distance=0.1)
    text = prompt("How does riluzole work?", [chunk])
    assert text.startswith("You are a helpful assistant answering questions about ALS")
    assert "Context:\n[1] Riluzole (source: d)\nIt inhibits glutamate.\n\nQuestion: How does riluzole work?" in text
    assert text.endswith("\n\nAnswer:")


@pytest.mark.slow
def test_rag_run_answers_benchmark_questions_from_retrieved_chunks(indexed, ollama_server, tmp_path):
    store, settings, manifest = indexed
    settings = for_run(settings.model_copy(update={"ollama_host": ollama_server.base_url}), system="rag", limit=2)
    run, ran = asking.run(store, settings)
    assert ran and run.stage == "eval-rag"
    # The benchmark file is no input: only its questions are fingerprinted, so a corrected key fact
    # re-scores the stored answers instead of asking again.
    assert {i.run for i in run.inputs} == {manifest.run}
    assert run.settings["questions_sha256"] == questions_sha256(select(load_benchmark(settings.eval.benchmark), 2))
    lines = store.get_bytes(run.output("responses.jsonl").key).decode().splitlines()
    responses = [Response.model_validate_json(line) for line in lines]
    assert [r.id for r in responses] == ["drug-001", "gene-001"]
    for r in responses:
        assert r.system == "rag" and r.model == "gemma3-270m" and r.latency_s > 0
        assert len(r.retrieved) == 3 and r.response.strip()
    assert responses[0].retrieved[0].source_id.startswith("sample-pmc-0001")  # "How does riluzole work?"
    retrieval = json.loads(store.get_bytes(run.output("retrieval.json").key))
    riluzole = retrieval["items"][0]
    assert riluzole["id"] == "drug-001" and riluzole["facts_in_context"][0], "'glutamate' is in the riluzole chunks"
    assert run.metrics["fact_recall_at_k"] == retrieval["summary"]["fact_recall"] > 0

    again, ran = asking.run(store, settings)
    assert not ran and again.run_id == run.run_id, "greedy, seeded generation: an identical rerun is skipped"
    forced, ran = asking.run(store, settings, force=True)
    rerun = store.get_bytes(forced.output("responses.jsonl").key).decode().splitlines()
    assert [json.loads(line)["response"] for line in rerun] == [r.response for r in responses]
