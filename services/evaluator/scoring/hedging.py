"""Hedging detection (docs/evaluation.md): uncertainty language per response, numeric approximation, refusals.

Counts cue phrases rather than classifying, so the report can compare how often each system hedges
and whether hedged answers are more or less accurate than confident ones. Three things that look
like hedges are kept apart (issue 18): the month *May* ("approved in May 2017"), numeric
approximation ("approximately 30 %", "about 2-3 months": a stated estimate, not doubt about the
claim, counted as ``approximations``), and regulatory standards that contain a cue ("reasonably
likely to predict clinical benefit", the FDA's accelerated-approval wording). A refusal declines: a
source that "does not provide" the answer, not a drug that "does not provide a cure"; and a response
that goes on to answer after declining is no refusal (issue 24).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

HEDGE_CUES = (
    "may", "might", "could", "possibly", "perhaps", "probably", "likely", "unlikely", "maybe", "seems",
    "appears to", "is thought to", "are thought to", "is believed to", "are believed to", "suggests",
    "suggested", "it is possible", "not clear", "unclear", "uncertain", "unknown", "not known",
    "not fully understood", "to some extent", "i think", "i believe", "not sure",
)
REFUSAL_CUES = (
    "i don't know", "i do not know", "i cannot answer", "i can't answer", "i am unable", "i'm unable",
    "not enough information", "does not contain enough information", "doesn't contain enough information",
    "cannot be determined",
)
# A source that does not say is a refusal; "riluzole does not provide a cure" is an answer.
_SOURCE_SILENT = (r"\b(?:passage|text|context|article|document|documents|source|sources|excerpt|abstract|"
                  r"information|data|question)s? (?:provided |given |above )?(?:does|do) ?(?:not|n't) "
                  r"(?:provide|contain|mention|say|state|specify|include|give)\b"
                  r"|\b(?:there is|i have|with) no information\b")
APPROXIMATORS = ("approximately", "about", "around", "roughly", "nearly", "almost", "circa", "some",
                 "an estimated", "estimated", "up to", "~")
# Fixed terms that contain a cue word but state a standard, not doubt.
REGULATORY_TERMS = ("reasonably likely", "likely to predict", "may be used", "could be approved")
_NUMBER_WORDS = ("one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty"
                 "|sixty|seventy|eighty|ninety|hundred|half|a third|a quarter|a few|a dozen")


def _pattern(cues: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(c) for c in sorted(cues, key=len, reverse=True)) + r")\b")


_HEDGE = _pattern(HEDGE_CUES)
_REFUSAL = re.compile(_pattern(REFUSAL_CUES).pattern + "|" + _SOURCE_SILENT)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# A declining sentence followed by one of at least this many words that declines nothing has answered after all
# ("The passage does not provide the year. Riluzole was approved by the FDA in 1995.").
_ANSWER_WORDS = 6
_REGULATORY = _pattern(REGULATORY_TERMS)
_APPROXIMATION = re.compile(
    r"(?<!\w)(" + "|".join(re.escape(a) for a in sorted(APPROXIMATORS, key=len, reverse=True)) + r")\s*"
    r"(?=\d|(?:" + _NUMBER_WORDS + r")\b)", re.IGNORECASE)
# "May" as a month: before a day or year, after a day, or capitalised inside a sentence.
_MONTH_MAY = re.compile(r"\b[Mm]ay(?=,?\s+\d)|(?<=\d\s)[Mm]ay\b|(?<=[a-z,]\s)May\b|\b(?:in|of|since|until|by) May\b")


def hedging(response: str) -> dict:
    # The month goes before lower-casing, while its capital still tells it from the verb.
    lowered = _MONTH_MAY.sub(" ", response.replace("\u2019", "'")).lower()
    approximations = Counter(m.group(1).lower() for m in _APPROXIMATION.finditer(lowered))
    without = _REGULATORY.sub(" ", _APPROXIMATION.sub(" ", lowered))
    cues = Counter(m.group(1) for m in _HEDGE.finditer(without))
    return {
        "count": sum(cues.values()),
        "hedged": bool(cues),
        "refusal": _refuses(lowered),
        "cues": dict(sorted(cues.items())),
        "approximations": sum(approximations.values()),
    }


def _refuses(lowered: str) -> bool:
    """A refusal cue, and no sentence after it that answers instead."""
    sentences = [s for s in _SENTENCE.split(lowered) if s.strip()]
    declined = [i for i, s in enumerate(sentences) if _REFUSAL.search(s)]
    if not declined:
        return False
    return not any(len(s.split()) >= _ANSWER_WORDS and not _REFUSAL.search(s) for s in sentences[declined[0] + 1:])


def aggregate(per_response: list[dict]) -> dict:
    n = len(per_response) or 1
    cues: Counter[str] = Counter()
    for h in per_response:
        cues.update(h["cues"])
    return {
        "hedged_rate": sum(h["hedged"] for h in per_response) / n,
        "refusal_rate": sum(h["refusal"] for h in per_response) / n,
        "mean_cues": sum(h["count"] for h in per_response) / n,
        "approximation_rate": sum(h.get("approximations", 0) > 0 for h in per_response) / n,
        "cues": dict(cues.most_common()),
    }
