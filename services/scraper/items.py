"""The one item every spider yields: a source record and what came of it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Record:
    """One source record (an article, a study, a page): its raw documents, or why it was refused.

    ``key`` identifies the record at its source (PMCID, NCT number, URL, article title); a
    restarted crawl skips records whose key it has already stored.
    """

    key: str
    url: str
    documents: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)


def rejection(kind: str, reason: str) -> dict:
    """``kind`` is one of: malformed, licence, notice, invalid, http, network, robots, missing, empty, error."""
    return {"kind": kind, "reason": reason}
