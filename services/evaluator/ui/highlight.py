"""Mark up an answer with the scorer's verdicts: which sentence states each key fact (or negates it,
or says it of another subject), which names are fabricated, and which facts are missing.

The scorer reports its evidence as a *normalised* clause, so the sentence of the original answer
whose normalised form contains that clause is the one highlighted; inside it the fact's own words
are marked when they are written verbatim, otherwise the whole sentence is.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from services.evaluator.scoring.normalize import normalize
from shared.schemas.eval import FactMatch

_SENTENCE = re.compile(r"[^.!?;\n]+[.!?;]*")

# Label of a fact verdict; also the CSS class of its <mark>.
PRESENT, NEGATED, WRONG_SUBJECT, MISSING, FABRICATED = "present", "negated", "wrong-subject", "missing", "fabricated"
COLORS = {PRESENT: "#b7ebc6", NEGATED: "#ffd8a8", WRONG_SUBJECT: "#ffe58f", FABRICATED: "#ffa8a8"}
LEGEND = {PRESENT: "fact present", NEGATED: "fact negated", WRONG_SUBJECT: "fact of another subject",
          FABRICATED: "fabricated name"}


def status(match: FactMatch) -> str:
    if match.present:
        return PRESENT
    if match.rejected == "negation":
        return NEGATED
    if match.rejected == "wrong_subject":
        return WRONG_SUBJECT
    return MISSING


@dataclass(frozen=True)
class Segment:
    """A run of the answer with one set of marks: the fact verdict (if any), its facts, fabricated?"""

    text: str
    label: str | None
    facts: tuple[str, ...] = ()
    fabricated: bool = False


def _fact_span(response: str, match: FactMatch) -> tuple[int, int] | None:
    if match.evidence is None:
        return None
    evidence = match.evidence.strip(" .,;:!?")
    for m in _SENTENCE.finditer(response):
        if evidence and evidence in normalize(m.group(0)):
            start, end = m.start(), m.end()
            inner = re.search(re.escape(match.fact), response[start:end], re.IGNORECASE)
            if inner:
                return start + inner.start(), start + inner.end()
            while start < end and response[start].isspace():
                start += 1
            return start, end
    return None


def segments(response: str, matches: list[FactMatch], fabricated: list[str]) -> list[Segment]:
    """The answer cut where its marks change; concatenating the texts gives the answer back."""
    n = len(response)
    label: list[str | None] = [None] * n
    facts: list[tuple[str, ...]] = [()] * n
    fab = [False] * n
    # Present first, so a sentence that both states one fact and negates another shows the rejection.
    for match in sorted((m for m in matches if status(m) != MISSING), key=lambda m: not m.present):
        span = _fact_span(response, match)
        if span is None:
            continue
        for i in range(*span):
            label[i] = status(match)
            facts[i] = (*facts[i], match.fact)
    for name in fabricated:
        for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", response):
            for i in range(m.start(), m.end()):
                fab[i] = True
    out: list[Segment] = []
    start = 0
    for i in range(1, n + 1):
        if i == n or (label[i], facts[i], fab[i]) != (label[start], facts[start], fab[start]):
            out.append(Segment(response[start:i], label[start], facts[start], fab[start]))
            start = i
    return out


def answer_html(response: str, matches: list[FactMatch], fabricated: list[str]) -> str:
    parts = []
    for seg in segments(response, matches, fabricated):
        text = html.escape(seg.text).replace("\n", "<br>")
        if seg.fabricated:
            text = f'<mark class="{FABRICATED}" title="fabricated: not in the training corpus">{text}</mark>'
        if seg.label:
            title = html.escape(f"{seg.label}: {'; '.join(seg.facts)}", quote=True)
            text = f'<mark class="{seg.label}" title="{title}">{text}</mark>'
        parts.append(text)
    return f'<div class="answer">{"".join(parts)}</div>'


def facts_html(matches: list[FactMatch], fabricated: list[str]) -> str:
    """The key facts with their verdicts (missing ones included), then the fabricated names."""
    symbols = {PRESENT: "✓ present", NEGATED: "⊘ negated", WRONG_SUBJECT: "≠ other subject", MISSING: "✗ missing"}
    rows = "".join(
        f'<tr class="{status(m)}"><td>{html.escape(m.fact)}</td><td>{symbols[status(m)]}</td>'
        f"<td>{html.escape(m.method or '')}</td></tr>"
        for m in matches
    )
    present = sum(m.present for m in matches)
    fab = ", ".join(f'<mark class="{FABRICATED}">{html.escape(f)}</mark>' for f in fabricated) or "none"
    return (
        f'<div class="facts"><table class="facts"><thead><tr><th>key fact</th><th>verdict</th><th>found by</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
        f"<p><b>{present} of {len(matches)}</b> key facts present · fabricated names: {fab}</p></div>"
    )


CSS = "\n".join(
    f".answer mark.{k}, .facts mark.{k}, .legend mark.{k} {{ background: {c}; color: #111; }}" for k, c in COLORS.items()
) + "\n.facts tr.missing td:nth-child(2) { color: #b00020; }\n.answer { line-height: 1.7; }"


def legend_html() -> str:
    return '<div class="legend">' + " ".join(f'<mark class="{k}">{v}</mark>' for k, v in LEGEND.items()) + "</div>"
