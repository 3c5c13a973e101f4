"""Reading the benchmark and response files: validated when read, every error naming its item."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from shared import userfiles
from shared.errors import InvalidInput
from shared.schemas.eval import BenchmarkItem, Response


class InputError(InvalidInput):
    """A benchmark or response file that cannot be scored; the message names the item."""


def _where(loc: tuple) -> str:
    """``('key_facts', 0, 'text')`` reads as ``key fact 0 text``: the item's fact by its position."""
    if len(loc) >= 2 and loc[0] == "key_facts" and isinstance(loc[1], int):
        return " ".join([f"key fact {loc[1]}", *(str(p) for p in loc[2:])])
    return ".".join(str(p) for p in loc)


def _problems(err: ValidationError) -> list[str]:
    """One entry per error; an item-level error (empty location) already names its item in the message."""
    return [f"{_where(e['loc']) + ': ' if e['loc'] else ''}{e['msg'].removeprefix('Value error, ')}"
            for e in err.errors()]


def load_benchmark(path: Path, report: Path | None = None) -> list[BenchmarkItem]:
    """Every item validated; problems are summarised in one line, all of them in ``report`` when many."""
    data = userfiles.read_json(path, "benchmark")
    if not isinstance(data, list) or not data:
        raise InputError(f"benchmark {path} must be a non-empty JSON list of items, not {type(data).__name__}"
                         + (" (empty)" if data == [] else ""))
    items, problems = [], []
    for index, raw in enumerate(data):
        name = f"item {raw['id']}" if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"] \
            else f"item #{index}"
        try:
            items.append(BenchmarkItem.model_validate(raw))
        except ValidationError as err:
            problems += [(name, problem) for problem in _problems(err)]
    duplicates = sorted(i for i, n in Counter(item.id for item in items).items() if n > 1)
    problems += [(f"item {i}", "duplicate id") for i in duplicates]
    if problems:
        raise InputError(userfiles.summarize(f"benchmark {path} is invalid", problems, report))
    return items


def load_responses(path: Path, report: Path | None = None) -> list[Response]:
    """Every line validated as a ``Response``; problems summarised like the benchmark's."""
    responses, problems = [], []
    for lineno, raw in userfiles.read_jsonl(path, "responses"):
        try:
            responses.append(Response.model_validate(raw))
        except ValidationError as err:
            problems += [(f"line {lineno}", problem) for problem in _problems(err)]
    if problems:
        raise InputError(userfiles.summarize(f"responses {path} are invalid", problems, report))
    if not responses:
        raise InputError(f"responses {path} is empty: give one JSON object per line, {{\"id\": ..., \"response\": ...}}")
    return responses


def _ids(ids: list[str], shown: int = 20) -> str:
    return ", ".join(ids[:shown]) + (f" … ({len(ids)} in all)" if len(ids) > shown else "")


def match(benchmark: list[BenchmarkItem], responses: list[Response]) -> list[tuple[BenchmarkItem, Response]]:
    """Pair every benchmark item with exactly one response, or say which ids are wrong. An empty
    response is what a degenerate model says (it stopped at once): scored as a non-answer, not refused."""
    by_id = {item.id: item for item in benchmark}
    problems = []
    duplicates = sorted(i for i, n in Counter(r.id for r in responses).items() if n > 1)
    if duplicates:
        problems.append(f"more than one response for {_ids(duplicates)}")
    unknown = [r.id for r in responses if r.id not in by_id]
    if unknown:
        problems.append(f"responses for unknown id(s) {_ids(unknown)}")
    answered = {r.id for r in responses}
    missing = [i for i in by_id if i not in answered]
    if missing:
        problems.append(f"no response for {len(missing)} item(s): {_ids(missing)}")
    if problems:
        raise InputError("responses do not match the benchmark: " + "; ".join(problems))
    response_of = {r.id: r for r in responses}
    return [(item, response_of[item.id]) for item in benchmark]
