"""Processor settings: the cleaning pipeline (docs/processing.md) and the BPE tokenizer.

``ALS_PROCESS__MINHASH_THRESHOLD=0.8``, ``ALS_PROCESS__WORKERS=2``, ``ALS_TOKENIZER__VOCAB_SIZE=8192``.
"""

from __future__ import annotations

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.settings import NOT_FINGERPRINTED, CommonSettings

MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"

# The seed's §2.3 volatile markers, by name; the name is what excluded.jsonl records.
VOLATILE_PATTERNS: dict[str, str] = {
    "currently": r"\bcurrently\b",
    "as_of_date": rf"\bas of (?:{MONTH}\b|\d{{4}}\b|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b|today\b|this (?:week|month|year)\b)",
    "hours": r"\b(?:office |opening |business )?hours\s*:",
    "contact_us": r"\bcontact us\b",
    "phone": r"(?:^|\D)(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b",
    "email": r"\b[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b",
    "price": r"(?:[$€£]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)? (?:dollars|USD|EUR)\b)",
    "schedule": r"\b(?:open|closed) (?:on )?(?:Mondays?|Tuesdays?|Wednesdays?|Thursdays?|Fridays?|Saturdays?|Sundays?|weekends?|daily)\b",
    "last_updated": r"\b(?:last|page) (?:updated|reviewed|modified)\b",
}


VOLATILE_OPTIONS = re2.Options()
VOLATILE_OPTIONS.case_sensitive = False
VOLATILE_OPTIONS.log_errors = False  # a bad pattern is reported once, by the validator below


class ProcessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minhash_threshold: float = Field(
        0.85, gt=0.0, le=1.0, description="Jaccard similarity above which a document is a near-duplicate (§2.3)"
    )
    num_perm: int = Field(
        128, ge=16, le=1024,
        description="MinHash permutations: 128 estimates Jaccard within ±0.03 (1 s.d.) at 0.9",
    )
    shingle_words: int = Field(
        5, ge=1, le=20,
        description="word n-gram size of the shingles: 5-grams (as datatrove) ignore shared common phrases "
        "yet still match documents that differ by a few edits",
    )
    paragraph_min_words: int = Field(
        6, ge=0,
        description="paragraphs shorter than this are never deduplicated: section headings such as "
        "'Primary outcome' repeat legitimately in every document of a kind",
    )
    min_tokens: int = Field(100, ge=0, description="documents with fewer words are dropped (§2.3 step 4)")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="validation share per source category (§2.3)")
    volatile_patterns: dict[str, str] = Field(
        VOLATILE_PATTERNS, description="name -> RE2 regex, matched case-insensitively; sentences matching any "
        "are removed (§2.3 step 3). RE2 has no lookbehind or backreferences, and its \\d, \\w and \\b are ASCII"
    )
    workers: int = Field(
        1, ge=1, le=64, description="processes for the per-document steps; does not change the output",
        json_schema_extra=NOT_FINGERPRINTED,
    )

    @field_validator("volatile_patterns")
    @classmethod
    def _compiles(cls, patterns: dict[str, str]) -> dict[str, str]:
        for name, pattern in patterns.items():
            try:
                re2.compile(pattern, VOLATILE_OPTIONS)
            except re2.error as err:
                reason = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else err
                raise ValueError(f"pattern {name!r} is not a valid RE2 regex (no lookbehind, no "
                                 f"backreferences): {reason}") from None
        return patterns


class TokenizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(16384, ge=260, le=65535, description="BPE vocabulary target (§3.1)")
    fallback_vocab_size: int = Field(
        32768, ge=260, le=65535, description="retrain size when too many medical terms fragment (§3.2)"
    )
    min_frequency: int = Field(2, ge=1, description="a pair must occur this often to be merged (§3.3)")
    fragment_tokens: int = Field(
        2, ge=1, description="a term fragments when one of its words takes more tokens than this (§3.2)"
    )
    max_fragmented: float = Field(
        0.2, ge=0.0, le=1.0, description="fraction of fragmented terms that triggers the retrain (§3.2)"
    )

    @model_validator(mode="after")
    def _fallback_is_larger(self) -> TokenizerConfig:
        if self.fallback_vocab_size < self.vocab_size:
            raise ValueError("fallback_vocab_size must be at least vocab_size")
        return self


class ExtractTokensConfig(BaseModel):
    """extract-tokens (docs/extract.md): which runs the extraction arm's shards are made from."""

    model_config = ConfigDict(extra="forbid")

    qa_run: str | None = Field(None, description="the extract-qa run whose QA text is added ('extract-qa/<run_id>'); "
                               "None: the latest", json_schema_extra=NOT_FINGERPRINTED)
    tokenize_run: str | None = Field(
        None, description="the main run's tokenize run, whose tokenizer encodes the text and whose val.bin is kept "
        "('tokenize/<run_id>'); None: the latest", json_schema_extra=NOT_FINGERPRINTED)


class ProcessorSettings(CommonSettings):
    process: ProcessConfig = ProcessConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    extract: ExtractTokensConfig = ExtractTokensConfig()
