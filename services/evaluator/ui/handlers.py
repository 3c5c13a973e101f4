"""What the pages do, as plain functions of their inputs: the tests call them without a browser.

Each handler returns (or yields, while an answer streams) the values of its page's output
components, and never raises for bad input or a backend that is down: it says so in the page's
status line instead, so one failed question leaves the page usable.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from services.evaluator.ui import highlight
from services.evaluator.ui.backends import RAG, SCRATCH, BackendDown, Backends, sampling
from shared.schemas.eval import BenchmarkItem, FactMatch, RetrievedChunk
from shared.schemas.model import read_metrics

ALLOWED_CONTROLS = "\n\t\r"
NAMES = {SCRATCH: "from-scratch model", RAG: "RAG baseline"}
DISCLAIMER = (
    "⚠ **Research project, not a medical resource.** Answers may contain factual errors and must never "
    "be used for medical decisions. For reliable ALS information, consult qualified healthcare providers."
)


class InvalidQuestion(ValueError):
    """A question the page refuses before any model sees it."""


def validate_question(text: str | None, max_chars: int) -> str:
    """The question stripped of surrounding blanks, or ``InvalidQuestion`` saying what is wrong."""
    question = (text or "").strip()
    if not question:
        raise InvalidQuestion("Please type a question first.")
    if len(question) > max_chars:
        raise InvalidQuestion(f"The question is {len(question)} characters long; the limit is {max_chars}. "
                              "Please shorten it.")
    controls = sorted({c for c in question if unicodedata.category(c) == "Cc" and c not in ALLOWED_CONTROLS})
    if controls:
        names = ", ".join(f"U+{ord(c):04X}" for c in controls)
        raise InvalidQuestion(f"The question contains control characters ({names}); please remove them.")
    return question


def warning(message: str) -> str:
    return f"⚠ {message}"


def chunks_markdown(chunks: list[RetrievedChunk]) -> str:
    """RAG's retrieved chunks with their sources, nearest first."""
    if not chunks:
        return "_No chunks retrieved._"
    parts = []
    for i, c in enumerate(chunks, 1):
        text = html.escape(c.text if len(c.text) <= 600 else c.text[:600] + " …")
        parts.append(f"**[{i}] {html.escape(c.title or 'untitled')}** — source `{html.escape(c.source_id)}`, "
                     f"chunk `{html.escape(c.chunk_id)}`, cosine distance {c.distance:.3f}\n\n> {text}")
    return "\n\n".join(parts)


# --- Chat ------------------------------------------------------------------------------------------

def chat(backends: Backends, max_chars: int, question: str, system: str, temperature: float, top_k: int,
         top_p: float, max_tokens: int, history: list[dict] | None) -> Iterator[tuple[list[dict], str, str]]:
    """Yields (conversation, retrieved sources, status) as the answer streams in."""
    history = list(history or [])
    try:
        question = validate_question(question, max_chars)
    except InvalidQuestion as err:
        yield history, "", warning(str(err))
        return
    options = sampling(temperature, top_k, top_p, max_tokens)
    turn = [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
    sources, answer = "", ""
    try:
        chunks = backends.retrieve(question) if system == RAG else None
        if chunks is not None:
            sources = chunks_markdown(chunks)
        for piece in backends.stream(system, question, options, chunks):
            answer += piece
            turn[1]["content"] = answer
            yield history + turn, sources, ""
    except BackendDown as err:
        yield history + ([*turn] if answer else []), sources, warning(str(err))
        return
    if not answer:
        yield history + turn, sources, warning(f"The {NAMES[system]} returned an empty answer.")
    else:
        yield history + turn, sources, f"Answered by the {NAMES[system]}."


# --- Compare ---------------------------------------------------------------------------------------

@dataclass
class Verdict:
    """The scorer's view of one answer: a verdict per key fact and the fabricated names."""

    facts: list[FactMatch]
    fabricated: list[str]


def find_item(items: dict[str, BenchmarkItem], question: str) -> BenchmarkItem | None:
    """The benchmark item asked, by its question text (case and spacing ignored)."""
    return items.get(" ".join(question.split()).casefold())


def index_items(items: list[BenchmarkItem]) -> dict[str, BenchmarkItem]:
    return {" ".join(i.question.split()).casefold(): i for i in items}


def answer_view(answer: str, verdict: Verdict | None, item: BenchmarkItem | None) -> tuple[str, str]:
    """(highlighted answer HTML, key-fact table HTML) for one system's answer (as scored: stripped)."""
    if verdict is None:
        return highlight.answer_html(answer, [], []), ""
    body = highlight.answer_html(answer, verdict.facts, verdict.fabricated)
    if item is None:
        fab = ", ".join(verdict.fabricated) or "none"
        return body, (f"<p>Not a benchmark question, so there are no key facts to check. "
                      f"Fabricated names: {html.escape(fab)}</p>")
    return body, highlight.facts_html(verdict.facts, verdict.fabricated)


def compare(backends: Backends, scorer, items: dict[str, BenchmarkItem], max_chars: int,
            question: str) -> Iterator[tuple[str, str, str, str, str, str]]:
    """Yields (scratch answer, scratch facts, RAG answer, RAG facts, RAG sources, status).

    Both systems generate with the options of ``als-lm eval run`` (greedy, the run's seed), so a
    benchmark question shows what the evaluated systems answered. ``scorer(item, answer)`` returns
    a ``Verdict``; it is ``None`` when the scorer cannot run, and the answers are shown unmarked.
    """
    try:
        question = validate_question(question, max_chars)
    except InvalidQuestion as err:
        yield "", "", "", "", "", warning(str(err))
        return
    item = find_item(items, question)
    answers = {SCRATCH: "", RAG: ""}
    problems: list[str] = []
    sources = ""

    def view() -> tuple[str, str, str, str, str, str]:
        return (highlight.answer_html(answers[SCRATCH], [], []), "", highlight.answer_html(answers[RAG], [], []),
                "", sources, " ".join(warning(p) for p in problems) or "Generating…")

    for system in (SCRATCH, RAG):
        try:
            chunks = None
            if system == RAG:
                chunks = backends.retrieve(question)
                sources = chunks_markdown(chunks)
            for piece in backends.stream(system, question, backends.eval_options(system), chunks):
                answers[system] += piece
                yield view()
        except BackendDown as err:
            problems.append(str(err))
            yield view()
            continue
        if not answers[system].strip():
            problems.append(f"The {NAMES[system]} returned an empty answer.")
    views = {}
    for system, answer in answers.items():
        answer = answer.strip()
        verdict = scorer(item, answer) if answer and scorer is not None else None
        views[system] = answer_view(answer, verdict, item)
    status = " ".join(warning(p) for p in problems)
    if not status:
        status = (f"Benchmark question `{item.id}` ({item.category}): key facts checked." if item
                  else "Not a benchmark question: only fabricated names are checked.")
    yield (*views[SCRATCH], *views[RAG], sources, status)


# --- Training --------------------------------------------------------------------------------------

def find_metrics_csv(configured: Path | None, work_dir: Path) -> Path | None:
    """The configured CSV, else the most recently written ``<work_dir>/train/*/metrics.csv``."""
    if configured is not None:
        return configured
    found = sorted(Path(work_dir).glob("train/*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def training_curves(path: str | Path | None,
                    label: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """(loss, learning rate, throughput) as long tables for line plots, and a status line.

    ``label`` names the source in the status line instead of the path (a stored run's name).
    """
    empty = pd.DataFrame({"step": [], "value": [], "series": []})
    if not path:
        return empty, empty, empty, warning("No training metrics yet: start `als-lm train`, or give a metrics.csv path.")
    path = Path(path)
    if not path.is_file():
        return empty, empty, empty, warning(f"{path} does not exist (yet).")
    try:
        rows = read_metrics(path)
    except (OSError, ValueError) as err:
        return empty, empty, empty, warning(f"Cannot read {path}: {err}")
    if not rows:
        return empty, empty, empty, f"{path}: no rows yet."
    frame = pd.DataFrame([r.model_dump() for r in rows])

    def long(columns: list[str]) -> pd.DataFrame:
        melted = frame.melt(id_vars="step", value_vars=columns, var_name="series", value_name="value")
        return melted.dropna(subset=["value"]).reset_index(drop=True)

    last = rows[-1]
    val = [r.val_loss for r in rows if r.val_loss is not None]
    status = (f"`{label or path}` · step **{last.step}** · train loss {last.train_loss if last.train_loss is not None else '—'}"
              f" · best val loss {min(val) if val else '—'} · {last.tokens_seen:,} tokens seen"
              f" · {last.elapsed_s:.0f} s elapsed")
    return long(["train_loss", "val_loss"]), long(["lr"]), long(["tokens_per_s"]), status
