"""The probe's artifacts (docs/probe.md): cloze items (``probe-items``) and what each system made of
them (``probe-*``). The item fields ``id``, ``stem``, ``candidates`` and ``answer`` are also what the
lm-evaluation-harness task is written from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.schemas.experiment import ExposureBucket

ProbeForm = Literal["memorisation", "generalisation"]
PROBE_FORMS: tuple[str, ...] = ProbeForm.__args__
ValueType = Literal["year", "month_year", "percent", "quantity", "number", "drug", "gene", "trial", "criteria",
                    "condition", "lab", "code", "name", "phrase"]
TARGET_DELIMITER = " "
"""Between the stem and a candidate, as lm-eval's ``target_delimiter``: stems end at a word, candidates
start at one."""


class ProbeItem(BaseModel):
    """One cloze item: a stem cut just before a key fact's value, the true value and same-type distractors."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="<benchmark id>.<key fact index>.<mem|gen>")
    benchmark_id: str
    fact_index: int = Field(ge=0)
    fact: str = Field(description="the key fact as the benchmark states it")
    form: ProbeForm = Field(description="memorisation: cut from a training sentence; generalisation: from the "
                            "reference answer or a validation sentence, the same fact in other words")
    stem: str = Field(min_length=1, description="the text before the value, without the delimiter")
    candidates: list[str] = Field(min_length=2, description="the true value and the distractors, shuffled")
    answer: int = Field(ge=0, description="index of the true value in candidates")
    value_type: ValueType = Field(description="the type the distractors share with the value")
    source: str = Field(description="the document id the stem was cut from, or 'reference_answer'")
    subject: str | None = Field(description="the question's subject word (exposure.question_subject)")
    in_train: bool = Field(description="the fact's words occur in at least one training document")
    train_docs: int = Field(ge=0, description="training documents where the subject and the fact co-occur")
    validation_docs: int = Field(ge=0, description="validation documents where the subject and the fact co-occur")
    bucket: ExposureBucket
    wording_in_train: bool = Field(
        description="the stem's last words and the value occur verbatim in a training document: for a "
        "generalisation item, its 'other words' are not other words")

    @model_validator(mode="after")
    def _answer_is_a_candidate(self) -> ProbeItem:
        if self.answer >= len(self.candidates):
            raise ValueError(f"item {self.id}: answer {self.answer} is not an index of its {len(self.candidates)} "
                             "candidates")
        if len({c.lower() for c in self.candidates}) != len(self.candidates):
            raise ValueError(f"item {self.id}: candidates repeat")
        return self

    @property
    def chance(self) -> float:
        return 1.0 / len(self.candidates)


class ProbeResult(BaseModel):
    """One item scored by one system (one line of ``results.jsonl``)."""

    model_config = ConfigDict(extra="forbid")

    item: str
    system: str = Field(description="scratch@<checkpoint>, scratch@init, ngram-1, ngram-2, ...")
    loglikelihoods: list[float] = Field(description="natural log P(candidate | stem), in candidate order")
    lengths: list[int] = Field(description="characters of each continuation (delimiter included), for acc_norm")
    rank: int = Field(ge=1, description="1 + candidates at least as likely as the true one (ties count against)")
    rank_norm: int = Field(ge=1, description="the same by log-likelihood per character (lm-eval's acc_norm)")
    greedy: str | None = Field(description="the system's greedy continuation of the stem; None: not asked (a "
                               "probe snapshot of the dense curve, scored by rank only)")
    greedy_match: bool | None = Field(description="the greedy continuation starts with the true value")


class ProbeSystem(BaseModel):
    """A system a probe run scored: what it is and, for the from-scratch model, where on the training curve it
    sits."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["scratch", "ngram", "gguf", "closed_book", "rag"] = Field(
        description="scratch: the from-scratch model in process; gguf: its exported GGUF through llama.cpp; "
        "closed_book and rag: the RAG generator without and with its retrieved chunks")
    step: int | None = None
    tokens_seen: int | None = None
    seed: int | None = Field(None, description="the training seed of a scratch system")
    train_run: str | None = Field(None, description="the train run its weights come from")
    on_curve: bool = Field(False, description="a point of the learning curve: the initialisation, a kept "
                           "checkpoint or a probe snapshot (not model.pt, the run's best, nor a baseline)")
    ranks_only: bool = Field(False, description="scored by rank only (no greedy continuation) and summarised in "
                             "the curve alone: a weights-only probe snapshot, or any point of another seed than "
                             "the main run's")
