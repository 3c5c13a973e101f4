"""A small but real evaluation for the UI: a corpus, its RAG index, both systems' answers and scores.

Both "systems" generate with the bundled Gemma 3 270M in the real Ollama server (the from-scratch
model's tag is set to it with ``eval.scratch_model``): training and exporting a model here would
cost minutes and the UI only needs an Ollama model to stream from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.evaluator.probe.score import rank
from services.evaluator.rag import generate
from services.evaluator.settings import for_run
from services.evaluator.stages import eval as asking
from services.evaluator.stages import rag_index
from services.evaluator.stages import score as scoring
from services.evaluator.ui.app import launch
from services.evaluator.ui.settings import UISettings
from shared import runs
from shared.schemas.corpus import CleanDocument
from shared.schemas.probe import ProbeItem, ProbeResult, ProbeSystem
from shared.servers import free_port
from shared.settings import load
from shared.store import LocalStore

GENERATOR = generate.BUNDLED_GENERATOR
DOCS = [
    ("riluzole", "Riluzole in ALS",
     ("Riluzole was the first drug approved for ALS. Riluzole is thought to protect motor neurons from glutamate "
      "excitotoxicity; it inhibits glutamate release and blocks voltage-gated sodium channels. In trials it "
      "extended survival by about two to three months.")),
    ("sod1", "SOD1 and familial ALS",
     ("SOD1 was the first gene linked to ALS. Mutations in SOD1, which encodes superoxide dismutase 1, were "
      "reported in familial ALS in 1993. Tofersen is an antisense oligonucleotide that lowers SOD1 protein.")),
    ("tdp43", "TDP-43 pathology",
     ("TDP-43 aggregates are found in the motor neurons of about 97 percent of people with ALS. The protein "
      "leaves the nucleus and forms inclusions in the cytoplasm.")),
    ("edaravone", "Edaravone",
     ("Edaravone is a free radical scavenger approved by the FDA for ALS in 2017. It is given intravenously or "
      "as an oral suspension.")),
]


def publish_corpus(store, work_dir: Path) -> None:
    """A ``process`` run, as the processor publishes it, holding the documents above."""
    docs = [CleanDocument(id=i, source="sample", category="educational", title=t, text=x) for i, t, x in DOCS]

    def body(writer, scratch):
        writer.put_bytes("train.jsonl", "".join(d.model_dump_json() + "\n" for d in docs[:-1]).encode())
        writer.put_bytes("val.jsonl", (docs[-1].model_dump_json() + "\n").encode())
        writer.put_bytes("corpus.txt", "\n\n".join(d.text for d in docs[:-1]).encode() + b"\n")

    runs.run_stage(store, "process", {"ui-test": True}, [], body, work_dir=work_dir)


@pytest.fixture(scope="session")
def evaluation(tmp_path_factory, ollama_server):
    """Settings and a store holding process, rag-index, eval-* and score-* runs (2 questions each)."""
    root = tmp_path_factory.mktemp("ui-eval")
    settings = load(UISettings, work_dir=root / "work", ollama_host=ollama_server.base_url,
                    store={"backend": "local", "root": root / "artifacts"},
                    eval={"scratch_model": GENERATOR, "max_tokens": 24, "review_sample_size": 2},
                    rag={"generator_model": GENERATOR, "top_k": 2},
                    ui={"max_tokens": 16, "port": free_port(), "training_refresh_s": 1.0})
    store = LocalStore(settings.store.root)
    generate.ensure_generator(generate.connect(settings.ollama_host), GENERATOR)
    publish_corpus(store, settings.work_dir)
    rag_index.run(store, settings)
    for system in ("scratch", "rag"):
        asking.run(store, for_run(settings, system=system, limit=2))
        scoring.run(store, for_run(settings, system=system))
    return settings, store


@pytest.fixture(scope="session")
def app_url(evaluation):
    """The app served on 127.0.0.1 for the session, as ``als-lm ui`` serves it."""
    settings, store = evaluation
    demo = launch(settings, store, block=False)
    yield f"http://127.0.0.1:{settings.ui.port}/"
    demo.close()


def publish_probe_items(store, work_dir: Path, items: list[ProbeItem]):
    """A ``probe-items`` run holding ``items``, as the probe-items stage publishes it."""
    lines = "".join(i.model_dump_json() + "\n" for i in items)
    manifest, _ = runs.run_stage(store, "probe-items", {"ui-test": len(items)}, [],
                                 lambda w, _s: w.put_bytes("items.jsonl", lines.encode()), work_dir=work_dir)
    return manifest


def publish_probe_run(store, work_dir: Path, stage: str, items_run, items: list[ProbeItem],
                      scores: dict[str, dict[str, list[float]]]):
    """A run of probe stage ``stage`` that read ``items_run`` (holding ``items``): ``scores`` gives each
    system's log-likelihoods per item id, in candidate order; its greedy continuation names the system."""
    by_id = {i.id: i for i in items}
    results = [ProbeResult(item=item, system=system, loglikelihoods=lls,
                           lengths=[len(c) + 1 for c in by_id[item].candidates],
                           rank=rank(lls, by_id[item].answer), rank_norm=rank(lls, by_id[item].answer),
                           greedy=f"{system} continues", greedy_match=False)
               for system, by_item in scores.items() for item, lls in by_item.items()]
    systems = [ProbeSystem(name=s, kind="ngram" if s.startswith("ngram") else "scratch").model_dump() for s in scores]

    def body(writer, scratch):
        writer.put_bytes("results.jsonl", "".join(r.model_dump_json() + "\n" for r in results).encode())
        writer.put_json("systems.json", systems)
        writer.put_json("summary.json", {})

    manifest, _ = runs.run_stage(store, stage, {"ui-test": scores},
                                 runs.inputs_from(items_run, ["items.jsonl"]), body, work_dir=work_dir)
    return manifest


def probe_item(benchmark_id: str, fact_index: int, form: str, stem: str, candidates: list[str], answer: int, *,
               bucket: str = "2-4", train_docs: int = 3, source: str = "sample-doc",
               subject: str | None = None) -> ProbeItem:
    """A cloze item as ``probe-items`` writes one (its id: ``<benchmark id>.<fact>.<mem|gen>``)."""
    return ProbeItem(id=f"{benchmark_id}.{fact_index}.{form[:3]}", benchmark_id=benchmark_id, fact_index=fact_index,
                     fact=candidates[answer], form=form, stem=stem, candidates=candidates, answer=answer,
                     value_type="phrase", source=source, subject=subject, in_train=train_docs > 0,
                     train_docs=train_docs, validation_docs=0, bucket=bucket, wording_in_train=False)
