"""Evaluation artifacts (docs/evaluation.md, docs/rag.md): benchmark items, responses, scores and manual reviews."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

BENCHMARK_CATEGORIES: tuple[str, ...] = (
    "drug_treatment",
    "gene_mutation",
    "diagnostic_criteria",
    "clinical_trials",
    "disease_mechanisms",
    "temporal_accuracy",
)
"""The design's six categories (§8.1): the default set and their order in reports, not a closed list."""


def categories_of(names: Iterable[str]) -> list[str]:
    """The design's categories first, in their order, then any other, sorted: how reports list them."""
    present = set(names)
    return [c for c in BENCHMARK_CATEGORIES if c in present] + sorted(present - set(BENCHMARK_CATEGORIES))


System = Literal["scratch", "scratch_base", "rag", "closed_book"]
"""scratch_base: the from-scratch model asked raw, k-shot, as a base model (issue 23); closed_book: the RAG
generator asked without retrieved context (issue 13)."""
SYSTEMS: tuple[str, ...] = System.__args__


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is blank")
    return value


class KeyFact(BaseModel):
    """One fact an answer should state. A plain string in the benchmark file is a fact with no options."""

    model_config = ConfigDict(extra="forbid")

    text: str
    aliases: list[str] = Field([], description="other names of the same fact; any one of them supports it")
    polarity: Literal["affirm", "deny"] = Field(
        "affirm", description="deny: the answer must deny ``text`` (\"not approved\" as a denial of approval)")
    tolerance: float | None = Field(
        None, ge=0, description="numeric facts: accepted absolute deviation from the number in ``text``")
    accepted_range: tuple[float, float] | None = Field(
        None, description="numeric facts: any stated number in [low, high] supports the fact")
    counted: bool = Field(
        True, description="False for a fact that repeats the question's own words: judged, never scored")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("is blank")
        return text

    @model_validator(mode="after")
    def _range_ordered(self) -> KeyFact:
        if self.accepted_range and self.accepted_range[0] > self.accepted_range[1]:
            raise ValueError(f"accepted_range {self.accepted_range} has low above high")
        return self


class ItemChange(BaseModel):
    """One correction of a benchmark item, kept so no fact is edited silently (e.g. to fit an answer)."""

    model_config = ConfigDict(extra="forbid")

    date: date
    change: str
    reason: str


class BenchmarkItem(BaseModel):
    """One question of the hallucination benchmark (docs/evaluation.md).

    Fields this schema does not name (a ``difficulty``, a ``prompt_template``) are kept and written
    back unchanged, so a benchmark written for another project loads whole (issue 24)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    category: str = Field(description="any name; BENCHMARK_CATEGORIES are the design's default set")
    question: str
    reference_answer: str = Field(validation_alias=AliasChoices("reference_answer", "verified_answer"))
    key_facts: list[KeyFact] = Field(min_length=1, max_length=5)
    source: str | dict[str, Any] = Field(description="a citation, or an object such as {type, id, corpus_ref}")
    answer_type: Literal["open", "yes_no"] = Field(
        "open", description="yes_no: scored as an exact answer (``expected_answer``) besides the key facts")
    expected_answer: Literal["yes", "no"] | None = None
    answerable: bool = Field(True, description="False when the bundled corpus cannot support the answer")
    trap: bool = Field(False, validation_alias=AliasChoices("trap", "is_trap"), description=(
        "the question asks about something that does not exist (a made-up drug): scored on whether the "
        "answer declines or states a key fact, which for a trap is the denial"))
    volatile: bool = Field(False, description="truth can change with time (approvals, withdrawals, trial status)")
    as_of: date | None = Field(None, description="the date the reference answer was true; required when volatile")
    history: list[ItemChange] = []

    _blank = field_validator("category", "question", "reference_answer")(_not_blank)

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, source: str | dict[str, Any]) -> str | dict[str, Any]:
        if not source or (isinstance(source, str) and not source.strip()):
            raise ValueError("is blank")
        return source

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkItem:
        if self.volatile and self.as_of is None:
            raise ValueError(f"item {self.id} is volatile (its truth can change) but has no as_of date: add "
                             "\"as_of\": \"YYYY-MM-DD\", a date on which its reference answer is documented true")
        if (self.answer_type == "yes_no") != (self.expected_answer is not None):
            raise ValueError(f"item {self.id}: expected_answer (yes or no) is required for yes_no items and only "
                             "for them")
        return self

    @property
    def fact_texts(self) -> list[str]:
        return [f.text for f in self.key_facts]


class RetrievedChunk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunk_id: str
    source_id: str
    title: str = ""
    text: str
    distance: float


class Response(BaseModel):
    """One line of ``responses.jsonl``; the scorer's file mode needs only ``id`` and ``response``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    response: str
    latency_s: float | None = Field(None, ge=0)
    system: str | None = None
    model: str | None = None
    retrieved: list[RetrievedChunk] | None = None


FactMethod = Literal["exact", "tokens", "numeric", "fuzzy", "embedding", "answer"]
Rejection = Literal["negation", "wrong_subject", "other_value", "opposite"]
FactVerdict = Literal["supported", "contradicted", "absent"]


class FactMatch(BaseModel):
    """How one key fact was judged, so every verdict can be inspected."""

    model_config = ConfigDict(extra="forbid")

    fact: str
    present: bool = Field(description="the fact is supported (kept for the issue-7 contract)")
    verdict: FactVerdict = Field(
        description="supported; contradicted (denied, or another year/dose/number/gene/direction stated); "
        "absent (not stated)")
    counted: bool = Field(True, description="False: the key fact repeats the question; judged, not scored")
    method: FactMethod | None = Field(None, description="how the fact was found (also when it was rejected)")
    rejected: Rejection | None = Field(None, description="found, but negated or stated of another subject")
    evidence: str | None = Field(None, description="the clause that stated (or rejected) the fact")
    score: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _verdict_from_present(cls, value: Any) -> Any:
        """Scores written before verdicts existed: present is supported, anything else absent."""
        if isinstance(value, dict) and "verdict" not in value and "present" in value:
            return {**value, "verdict": "supported" if value["present"] else "absent"}
        return value

    @model_validator(mode="after")
    def _present_is_supported(self) -> FactMatch:
        if self.present != (self.verdict == "supported"):
            raise ValueError(f"fact {self.fact!r}: present={self.present} but verdict={self.verdict}")
        return self


ClaimVerdict = Literal["supported", "contradicted", "unverifiable"]
ClaimRule = Literal["exact", "tokens", "numeric", "fuzzy", "negation", "opposite", "other_value", "wrong_subject",
                    "entity", "similarity"]


class ClaimJudgement(BaseModel):
    """One atomic claim of a response and how it was judged (issue 18: claim precision, faithfulness)."""

    model_config = ConfigDict(extra="forbid")

    text: str
    verdict: ClaimVerdict = Field(
        description="supported or contradicted by the best-matching evidence sentence; unverifiable otherwise")
    rule: ClaimRule | None = Field(
        None, description="the fact-scorer method or rejection, or the claim rule, that decided")
    source: str | None = Field(None, description="reference, corpus, or the retrieved chunk's number ([1]...)")
    evidence: str | None = Field(None, description="the evidence sentence that decided")
    similarity: float | None = Field(None, description="MiniLM cosine of the claim and that sentence")


class Citation(BaseModel):
    """A source the response cites: ``[6]``, ``source: <id>``, or a retrieved document named verbatim."""

    model_config = ConfigDict(extra="forbid")

    marker: str
    sentence: str
    chunk: int | None = Field(None, description="1-based number of the cited retrieved chunk; None: not retrieved")
    retrieved: bool = Field(description="the cited source is one of the chunks the generator was given")
    supports: bool = Field(description="retrieved, and that chunk supports every claim of the citing sentence")


class Faithfulness(BaseModel):
    """RAGAS-style measures of a response that carries retrieved chunks."""

    model_config = ConfigDict(extra="forbid")

    claims: list[ClaimJudgement] = Field(
        description="the response's claims judged against the retrieved chunks only")
    supported: float | None = Field(None, ge=0, le=1, description="share of claims the chunks support; None: no claims")
    citations: list[Citation] = []
    citation_correct: float | None = Field(None, ge=0, le=1, description="share of citations that are correct")
    answer_relevancy: float | None = Field(
        None, description="MiniLM cosine of the answer and the question; None when embeddings are off")
    gold_documents: list[str] = Field([], description="the item's gold evidence documents (gold_evidence.json)")
    context_precision: float | None = Field(
        None, ge=0, le=1, description="mean precision@k over the ranks of relevant chunks; None: no gold evidence")
    reciprocal_rank: float | None = Field(None, ge=0, le=1, description="1/rank of the first relevant chunk")


class GoldEvidence(BaseModel):
    """``gold_evidence.json`` (one per item): the corpus documents that state the item's key facts.

    Derived by rule, not hand-labelled: see docs/evaluation.md (Gold evidence)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    documents: list[str] = Field(description="document ids, most key facts first")
    facts: dict[str, list[int]] = Field(description="document id -> indices of the counted key facts it states")
    needed: int = Field(ge=0, description="key facts a document must state to be gold evidence")


TrapVerdict = Literal["declined", "denied", "answered"]
NonAnswer = Literal["empty", "repetition", "garbled"]
"""Why a response states nothing (services/evaluator/scoring/acceptability.py)."""


class ItemScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    category: str
    facts_present: list[bool]
    accuracy: float = Field(ge=0.0, le=1.0)
    fabricated_entities: list[str]
    hedging: dict[str, Any]
    facts: list[FactMatch]
    facts_contradicted: int = Field(0, ge=0, description="counted key facts the response contradicts")
    answer: FactMatch | None = Field(None, description="yes_no items: the response's yes/no against the expected one")
    claims: list[ClaimJudgement] | None = Field(
        None, description="the response's atomic claims against the reference and the corpus; [] when it makes none")
    faithfulness: Faithfulness | None = Field(None, description="only for responses that carry retrieved chunks")
    non_answer: bool = Field(False, description="the response states nothing (empty, a loop, or word salad): every "
                             "fact is absent and it makes no claims")
    non_answer_reason: NonAnswer | None = Field(None, description="why it is a non-answer (None for an answer)")
    trap: TrapVerdict | None = Field(
        None, description="trap items only: the answer declined (a refusal), denied (stated a key fact, which for a "
        "trap is the denial) or answered as if the premise were true; accuracy is 1 for the first two")

    @model_validator(mode="before")
    @classmethod
    def _reason_of_older_scores(cls, value: Any) -> Any:
        """Scores written before reasons existed called only an empty response a non-answer."""
        if isinstance(value, dict) and value.get("non_answer") and "non_answer_reason" not in value:
            return {**value, "non_answer_reason": "empty"}
        return value

    @model_validator(mode="after")
    def _reason_iff_non_answer(self) -> ItemScore:
        if self.non_answer != (self.non_answer_reason is not None):
            raise ValueError("non_answer_reason is given exactly when non_answer is true")
        return self


class ScoreFile(BaseModel):
    """``scores.json``: the stable scoring contract (issue 7) plus per-fact detail."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemScore]
    summary: dict[str, Any]


Correctness = Literal["correct", "partially_correct", "incorrect", "refusal"]
CORRECTNESS: tuple[str, ...] = Correctness.__args__
FailureMode = Literal[
    "confident_fabrication",
    "plausible_blending",
    "outdated_information",
    "boundary_confusion",
    "accurate_but_misleading",
    "non_answer",
]
"""non_answer: the output is not an answer at all (a fragment, an off-topic continuation, repetition);
outside the design's §8.3 matrix, whose rows are kinds of wrong answers."""
FAILURE_MODES: tuple[str, ...] = FailureMode.__args__
Severity = Literal["low", "medium", "high"]
SEVERITIES: tuple[str, ...] = Severity.__args__


class Review(BaseModel):
    """One manual review with the failure taxonomy (docs/evaluation.md)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    system: str
    correctness: Correctness
    failure_mode: FailureMode | None = None
    severity: Severity | None = None
    notes: str = ""
    reviewer: str = ""
    reviewed_at: datetime

    @model_validator(mode="after")
    def _failure_only_when_wrong(self) -> Review:
        if self.correctness == "correct" and (self.failure_mode or self.severity):
            raise ValueError(f"review of {self.id}: a correct response has no failure mode or severity")
        if self.correctness in ("partially_correct", "incorrect") and not (self.failure_mode and self.severity):
            raise ValueError(f"review of {self.id}: a {self.correctness} response needs a failure mode and severity")
        return self
