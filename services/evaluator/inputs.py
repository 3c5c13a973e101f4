"""Reading the benchmark and response files: validated when read, every error naming its item."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from shared.errors import InvalidInput
from shared.schemas.eval import BenchmarkItem, Response


class InputError(InvalidInput):
    """A benchmark or response file that cannot be scored; the message names the item."""


def _where(loc: tuple) -> str:
    """``('key_facts', 0, 'text')`` reads as ``key fact 0 text``: the item's fact by its position."""
    if len(loc) >= 2 and loc[0] == "key_facts" and isinstance(loc[1], int):
        return " ".join([f"key fact {loc[1]}", *(str(p) for p in loc[2:])])
    return ".".join(str(p) for p in loc)


def _problems(err: ValidationError) -> str:
    """One line per error; an item-level error (empty location) already names its item in the message."""
    return "; ".join(f"{_where(e['loc']) + ': ' if e['loc'] else ''}{e['msg'].removeprefix('Value error, ')}"
                     for e in err.errors())


def load_benchmark(path: Path) -> list[BenchmarkItem]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"benchmark {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise InputError(f"benchmark {path} is not valid JSON: {err}") from None
    if not isinstance(data, list) or not data:
        raise InputError(f"benchmark {path} must be a non-empty JSON list of items")
    items, problems = [], []
    for index, raw in enumerate(data):
        name = raw.get("id") if isinstance(raw, dict) and raw.get("id") else f"#{index}"
        try:
            items.append(BenchmarkItem.model_validate(raw))
        except ValidationError as err:
            problems.append(f"item {name}: {_problems(err)}")
    duplicates = sorted(i for i, n in Counter(item.id for item in items).items() if n > 1)
    if duplicates:
        problems.append(f"duplicate id(s): {', '.join(duplicates)}")
    if problems:
        raise InputError(f"benchmark {path} is invalid: " + " | ".join(problems))
    return items


def load_responses(path: Path) -> list[Response]:
    responses = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"responses {path} does not exist") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            responses.append(Response.model_validate_json(line))
        except ValidationError as err:
            raise InputError(f"responses {path} line {lineno}: {_problems(err)}") from None
    if not responses:
        raise InputError(f"responses {path} is empty")
    return responses


def match(benchmark: list[BenchmarkItem], responses: list[Response],
          allow_empty: bool = False) -> list[tuple[BenchmarkItem, Response]]:
    """Pair every benchmark item with exactly one non-empty response, or say which ids are wrong.

    ``allow_empty``: the responses come from an eval run, where an empty answer is what the model
    said (it stopped at once) and is scored as stating nothing, not refused as a broken file."""
    by_id = {item.id: item for item in benchmark}
    problems = []
    duplicates = sorted(i for i, n in Counter(r.id for r in responses).items() if n > 1)
    if duplicates:
        problems.append(f"more than one response for {', '.join(duplicates)}")
    unknown = [r.id for r in responses if r.id not in by_id]
    if unknown:
        problems.append(f"responses for unknown id(s) {', '.join(unknown)}")
    answered = {r.id for r in responses}
    missing = [i for i in by_id if i not in answered]
    if missing:
        problems.append(f"no response for {len(missing)} item(s): {', '.join(missing[:20])}"
                        + (" …" if len(missing) > 20 else ""))
    empty = [r.id for r in responses if not r.response.strip()]
    if empty and not allow_empty:
        problems.append(f"empty response for {', '.join(empty)}")
    if problems:
        raise InputError("responses do not match the benchmark: " + "; ".join(problems))
    response_of = {r.id: r for r in responses}
    return [(item, response_of[item.id]) for item in benchmark]
