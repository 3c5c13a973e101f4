"""The stage graph: one declaration per stage, the single place that says which stage reads which.

Stages still meet only in the artifact store; this module writes down the flow they follow, so
the missing-run hints, the settings that enter each fingerprint, the table in
docs/architecture.md and ``als-lm artifacts trace`` all come from the same declarations.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel

from shared.schemas.corpus import CleanDocument, RawDocument, TokenShardsMeta
from shared.schemas.eval import SYSTEMS, Response, Review, ScoreFile
from shared.schemas.experiment import ExperimentResult
from shared.schemas.export import ExportReport, ServeReport
from shared.schemas.extract import ExtractOutcome, QaPair
from shared.schemas.probe import ProbeItem, ProbeResult
from shared.settings import fingerprinted


@dataclass(frozen=True)
class Output:
    """An output a stage publishes: a name inside its run (``*`` for numbered parts) and, where the
    artifact crosses a service boundary, the schema its content validates against."""

    name: str
    schema: type[BaseModel] | None = None


@dataclass(frozen=True)
class Reads:
    """An upstream stage (a pattern: ``scrape-*`` is every scraper) and the outputs read from it."""

    stage: str
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    name: str
    command: str
    """What runs it: the arguments after ``als-lm``."""
    service: str
    """The service (and image) that runs it; its settings class holds the sections below."""
    reads: tuple[Reads, ...]
    writes: tuple[Output, ...]
    settings: tuple[str, ...]
    """Settings sections (or common fields) whose fields enter the fingerprint, except fields marked
    ``NOT_FINGERPRINTED`` or ``affects`` other stages (shared/settings.py)."""
    outside: str = ""
    """What it reads from outside the store (the bundled sample, the web, a server)."""
    optional: bool = False
    """Not needed downstream: a missing run of it leaves a part out instead of stopping a stage."""

    @property
    def module(self) -> str:
        """The module whose ``run(store, settings, *, force)`` is the stage. Stages of one kind share
        a module (``scrape-*``, ``eval-*``, ``score-*``, ``review-*``) and read which one from the
        settings (the source, the system)."""
        kind = OWN_MODULE.get(self.name, self.name.split("-")[0])
        return f"services.{self.service}.stages.{kind}"


OWN_MODULE = {"rag-index": "rag_index", "probe-items": "probe_items", "probe-gguf": "probe_gguf",
              "probe-rag": "probe_rag", "extract-qa": "extract_qa", "extract-tokens": "extract_tokens",
              "extract-measure": "extract_measure"}
"""Stages whose name's first word is not their kind: ``probe-items`` makes what the ``probe-*`` systems score."""

SCRAPERS = {
    "sample": "the bundled sample corpus",
    "pmc": "PubMed Central (NCBI E-utilities)",
    "clinicaltrials": "the ClinicalTrials.gov API",
    "web": "the curated sites of sources.yaml",
    "wikipedia": "Wikipedia (MediaWiki API)",
}
REVIEWED = ("scratch", "rag")  # the systems `als-lm eval review` samples

_SCRAPE = tuple(
    Stage(f"scrape-{source}", f"scrape {source}", "scraper", (),
          (Output("docs/part-*.jsonl", RawDocument), Output("rejected.jsonl")), ("scrape",),
          outside=origin)
    for source, origin in SCRAPERS.items()
)

_PIPELINE = (
    Stage("process", "process", "processor",
          (Reads("scrape-*", ("docs/part-*.jsonl", "rejected.jsonl")),),
          (Output("train.jsonl", CleanDocument), Output("val.jsonl", CleanDocument), Output("corpus.txt"),
           Output("excluded.jsonl"), Output("stats.md"), Output("stats.json")),
          ("process", "seed"), outside="the bundled medical-terms list"),
    Stage("tokenize", "tokenize", "processor",
          (Reads("process", ("corpus.txt", "train.jsonl", "val.jsonl")),),
          (Output("tokenizer.json"), Output("validation.md"), Output("validation.json"), Output("train.bin"),
           Output("val.bin"), Output("meta.json", TokenShardsMeta)),
          ("tokenizer",), outside="the bundled medical-terms list"),
    Stage("train", "train", "trainer",
          (Reads("tokenize", ("train.bin", "val.bin", "meta.json", "tokenizer.json")),
           # the extraction arm's model (docs/extract.md), with train.tokens_run naming the shards
           Reads("extract-tokens", ("train.bin", "val.bin", "meta.json", "tokenizer.json"))),
          (Output("model.pt"), Output("tokenizer.json"), Output("metrics.csv"), Output("plots/*.png"),
           Output("checkpoints/*/model.pt"), Output("snapshots/*/model.pt")),
          ("train", "seed")),
    Stage("export", "export run", "exporter",
          (Reads("train", ("model.pt", "checkpoints/*/model.pt", "tokenizer.json")), Reads("tokenize", ("val.bin",))),
          (Output("hf/*"), Output("gguf/*.gguf"), Output("Modelfile"), Output("report.json", ExportReport),
           Output("report.md")),
          ("export",)),
    Stage("serve", "export ollama", "exporter",
          (Reads("export", ("gguf/*.gguf",)),),
          (Output("report.json", ServeReport), Output("report.md")),
          ("serve",), outside="the Ollama server, where it creates the tags"),
    Stage("rag-index", "rag index", "evaluator",
          (Reads("process", ("train.jsonl", "val.jsonl")),),
          (Output("chunks.jsonl"), Output("chroma/*")),
          ("rag",)),
)

_EVAL_READS = {
    "scratch": (Reads("serve", ("report.json",)),),
    # its tokenizer counts the k-shot prompt's tokens, its report gives the model's context
    "scratch_base": (Reads("serve", ("report.json",)), Reads("export", ("hf/*", "report.json"))),
    "rag": (Reads("rag-index", ("chunks.jsonl", "chroma/*")),),
    "closed_book": (),  # the RAG generator without retrieved context: it reads nothing published
}
_EVAL_WRITES = {"rag": (Output("responses.jsonl", Response), Output("retrieval.json")),
                "scratch_base": (Output("responses.jsonl", Response), Output("prompts.json"))}
_EVAL_ASKS = {"scratch": "the served model", "scratch_base": "the served model raw, k-shot",
              "rag": "the RAG generator", "closed_book": "the RAG generator"}

_EVALUATION = (
    *(Stage(f"eval-{system}", f"eval run --system {system}", "evaluator", _EVAL_READS[system],
            _EVAL_WRITES.get(system, (Output("responses.jsonl", Response),)),
            ("eval", "seed") if system.startswith("scratch") else ("eval", "rag", "seed"),
            outside=f"the bundled benchmark; asks {_EVAL_ASKS[system]} in Ollama")
      for system in SYSTEMS),
    *(Stage(f"score-{system}", f"eval score --system {system}", "evaluator",
            (Reads(f"eval-{system}", ("responses.jsonl",)), Reads("process", ("corpus.txt",))),
            (Output("scores.json", ScoreFile),),
            ("eval",), outside="the bundled benchmark")
      for system in SYSTEMS),
    *(Stage(f"review-{system}", f"eval review --system {system}", "evaluator",
            (Reads(f"score-{system}", ("scores.json",)),),
            (Output("reviews.jsonl", Review), Output("sample.json")),
            ("eval", "seed"), outside="a person's judgements", optional=True)
      for system in REVIEWED),
    Stage("report", "report", "evaluator",
          (Reads("score-*", ("scores.json",)), Reads("eval-*", ("responses.jsonl",)), Reads("process", ("corpus.txt",)),
           Reads("review-*", ("reviews.jsonl",)), Reads("probe-scratch", ("results.jsonl", "systems.json")),
           Reads("probe-gguf", ("results.jsonl", "systems.json")), Reads("probe-rag", ("results.jsonl", "systems.json")),
           Reads("probe-items", ("items.jsonl",)), Reads("extract-measure", ("summary.json",))),
          (Output("report.md"), Output("report.html"), Output("report.json"), Output("charts/*.png")),
          ("eval",), outside="the bundled benchmark"),
)

_PROBE = (
    Stage("probe-items", "probe items", "evaluator",
          (Reads("process", ("train.jsonl", "val.jsonl")),),
          (Output("items.jsonl", ProbeItem),),
          ("probe", "seed"), outside="the bundled benchmark and entity list"),
    Stage("probe-scratch", "probe run", "evaluator",
          (Reads("probe-items", ("items.jsonl",)),
           Reads("train", ("model.pt", "checkpoints/*/model.pt", "snapshots/*/model.pt", "tokenizer.json")),
           Reads("tokenize", ("train.bin",))),
          (Output("results.jsonl", ProbeResult), Output("systems.json"), Output("summary.json")),
          ("probe", "seed"), optional=True),
    Stage("probe-gguf", "probe gguf", "evaluator",
          (Reads("probe-items", ("items.jsonl",)), Reads("export", ("gguf/*.gguf",)),
           Reads("probe-scratch", ("results.jsonl",))),
          (Output("results.jsonl", ProbeResult), Output("systems.json"), Output("summary.json")),
          ("probe", "seed"), optional=True),
    Stage("probe-rag", "probe rag", "evaluator",
          (Reads("probe-items", ("items.jsonl",)), Reads("rag-index", ("chunks.jsonl", "chroma/*"))),
          (Output("results.jsonl", ProbeResult), Output("systems.json"), Output("summary.json"),
           Output("retrieval.jsonl")),
          ("probe", "rag", "seed"), outside="the bundled RAG generator's GGUF", optional=True),
)

# The extraction arm (docs/extract.md): QA text for half of the probed facts, a second model trained with it.
_EXTRACT = (
    Stage("extract-qa", "experiment-extract", "evaluator",
          (Reads("probe-items", ("items.jsonl",)), Reads("process", ("train.jsonl",))),
          (Output("qa.jsonl", QaPair), Output("documents.jsonl", CleanDocument), Output("split.json")),
          ("extract", "seed"), outside="the bundled benchmark", optional=True),
    Stage("extract-tokens", "experiment-extract", "processor",
          (Reads("extract-qa", ("documents.jsonl",)), Reads("process", ("train.jsonl",)),
           Reads("tokenize", ("tokenizer.json", "val.bin", "meta.json"))),
          (Output("tokenizer.json"), Output("train.bin"), Output("val.bin"), Output("meta.json", TokenShardsMeta)),
          ("extract", "seed"), optional=True),
    Stage("extract-measure", "experiment-extract", "evaluator",
          (Reads("extract-qa", ("split.json",)), Reads("probe-items", ("items.jsonl",)),
           Reads("train", ("checkpoints/*/model.pt", "tokenizer.json")),
           Reads("score-scratch_base", ("scores.json",)), Reads("eval-scratch_base", ("responses.jsonl",))),
          (Output("results.jsonl", ExtractOutcome), Output("summary.json")),
          ("extract", "seed"), optional=True),
)

# The experiment links runs by id (experiment.json); what it reads is every run it names.
_EXPERIMENT = (
    Stage("experiment", "experiment", "evaluator",
          (Reads("train", ("metrics.csv",)), Reads("process", ("train.jsonl", "val.jsonl")),
           Reads("export", ("report.json",)), Reads("serve", ("report.json",)),
           Reads("eval-*", ("responses.jsonl",)), Reads("score-*", ("scores.json",)),
           Reads("probe-scratch", ("results.jsonl", "systems.json", "summary.json"))),
          (Output("experiment.json", ExperimentResult),),
          ()),
)

STAGES: dict[str, Stage] = {s.name: s for s in (*_SCRAPE, *_PIPELINE, *_EVALUATION, *_PROBE, *_EXTRACT,
                                                *_EXPERIMENT)}


def declared(name: str) -> Stage | None:
    """The declaration of stage ``name``, or None for a stage nobody declared (hand-made runs)."""
    return STAGES.get(name)


def matching(pattern: str) -> list[Stage]:
    """The declared stages a ``Reads.stage`` pattern (or a stage name) names."""
    return [s for s in STAGES.values() if fnmatchcase(s.name, pattern)]


def fingerprint_settings(stage: str, settings: BaseModel, **derived: Any) -> dict[str, Any]:
    """The settings a run of ``stage`` records and fingerprints: the result-affecting fields of the
    sections it declares, plus values derived at run time (a model's digest, a data file's hash)."""
    sections = set(STAGES[stage].settings)
    return {**{k: v for k, v in fingerprinted(settings, stage).items() if k in sections}, **derived}


def hint(stage: str) -> str:
    """How to produce a run of ``stage``; a declared stage's hint names its real command
    (tests/foundation/test_stages.py resolves each one against the command line)."""
    found = STAGES.get(stage)
    if found is None:
        return "it is not a pipeline stage (shared/stages.py); `als-lm artifacts ls` lists what is published"
    return f"run `als-lm {found.command}` first"
