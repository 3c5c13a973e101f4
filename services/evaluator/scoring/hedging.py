"""Hedging detection (design §8.2): uncertainty language per response, and refusals to answer.

Counts cue phrases rather than classifying, so the report can compare how often each system hedges
and whether hedged answers are more or less accurate than confident ones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

HEDGE_CUES = (
    "may", "might", "could", "possibly", "perhaps", "probably", "likely", "unlikely", "maybe", "seems",
    "appears to", "is thought to", "are thought to", "is believed to", "are believed to", "suggests",
    "suggested", "it is possible", "not clear", "unclear", "uncertain", "unknown", "not known",
    "not fully understood", "to some extent", "approximately", "i think", "i believe", "not sure",
)
REFUSAL_CUES = (
    "i don't know", "i do not know", "i cannot answer", "i can't answer", "i am unable", "i'm unable",
    "not enough information", "does not contain enough information", "doesn't contain enough information",
    "does not provide", "cannot be determined", "no information",
)


def _pattern(cues: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(re.escape(c) for c in sorted(cues, key=len, reverse=True)) + r")\b")


_HEDGE = _pattern(HEDGE_CUES)
_REFUSAL = _pattern(REFUSAL_CUES)


def hedging(response: str) -> dict:
    text = response.lower().replace("\u2019", "'")
    cues = Counter(m.group(1) for m in _HEDGE.finditer(text))
    return {
        "count": sum(cues.values()),
        "hedged": bool(cues),
        "refusal": bool(_REFUSAL.search(text)),
        "cues": dict(sorted(cues.items())),
    }


def aggregate(per_response: list[dict]) -> dict:
    n = len(per_response) or 1
    cues: Counter[str] = Counter()
    for h in per_response:
        cues.update(h["cues"])
    return {
        "hedged_rate": sum(h["hedged"] for h in per_response) / n,
        "refusal_rate": sum(h["refusal"] for h in per_response) / n,
        "mean_cues": sum(h["count"] for h in per_response) / n,
        "cues": dict(cues.most_common()),
    }
