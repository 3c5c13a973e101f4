"""Reading a file a user hands over (benchmark, responses, configs, settings), and reporting what is wrong with it.

Every failure is an ``UnreadableFile`` whose message is one line naming the file, the line where
there is one, and what to do; nothing reaches the user as a traceback. A file over its size limit is
refused before it is read, and nesting deeper than ``MAX_DEPTH`` is refused before a parser recurses
into it (``json`` and PyYAML recurse once per level and would end in ``RecursionError``).
The limits are documented in docs/troubleshooting.md ("Files you hand over").
"""

from __future__ import annotations

import codecs
import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.errors import InvalidInput

DATA_LIMIT = 64 * 2**20
"""Bytes: a benchmark, a responses file or a corpus of scored documents; the bundled benchmark is 0.2 MB."""
CONFIG_LIMIT = 2**20
"""Bytes: a YAML config, a settings or source-list file; the bundled ones are under 4 KB."""
MAX_DEPTH = 64
"""Nesting levels of lists and mappings; the deepest bundled file has 4."""
SUMMARY_ITEMS = 3
"""Problems quoted in a one-line summary; the rest go to the full report file."""

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class UnreadableFile(InvalidInput):
    """A user's file that cannot be read as what it should be; the message says where and what to do."""


def one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line, cut at ``limit`` characters: parser messages quote the input verbatim."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def read_bytes(path: Path, what: str, limit: int = DATA_LIMIT) -> bytes:
    """The whole file, refused unreadable, missing, a directory, or over ``limit`` bytes before reading."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise UnreadableFile(f"{what} {path} is a directory; give a file")
        if size > limit:
            raise UnreadableFile(f"{what} {path} is {size:,} bytes, over the {limit:,}-byte limit for a {what}; "
                                 "split it or check that it is the right file")
        return path.read_bytes()
    except FileNotFoundError:
        raise UnreadableFile(f"{what} {path} does not exist") from None
    except OSError as err:
        raise UnreadableFile(f"cannot read {what} {path}: {err.strerror or err}") from None


def decode(data: bytes, path: Path, what: str) -> str:
    """UTF-8 (a BOM is dropped), or UTF-16/32 when a byte-order mark says so; anything else is refused."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as err:
                raise UnreadableFile(f"{what} {path} starts with a {codec.upper()} byte-order mark but is not valid "
                                     f"{codec.upper()} (byte offset {err.start}); save it as UTF-8") from None
    head = data[:200]
    utf16 = "it looks like UTF-16 without a byte-order mark; save it as UTF-8"
    if head and max(head[0::2].count(0), head[1::2].count(0)) > len(head) // 4:
        raise UnreadableFile(f"{what} {path} is not UTF-8: {utf16}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UnreadableFile(f"{what} {path} is not UTF-8 (byte {data[err.start]:#04x} on line {line}; Latin-1, "
                             "Windows-1252 and binary files are not read); save it as UTF-8") from None
    if "\x00" in text:
        raise UnreadableFile(f"{what} {path} contains NUL bytes (line {text.count(chr(10), 0, text.index(chr(0))) + 1})"
                             ": it is binary, not text; give the text file")
    return text


def read_text(path: Path, what: str, limit: int = DATA_LIMIT) -> str:
    """The file's text (see ``decode``); ``what`` names it in errors ("benchmark", "train config")."""
    return decode(read_bytes(path, what, limit), Path(path), what)


def stream_lines(path: Path, what: str) -> Iterator[str]:
    """The lines of a file too big to hold (a corpus), decoded one at a time: UTF-8, a BOM dropped;
    no size limit, and a bad byte is an error naming its line."""
    try:
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if lineno == 1 and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise UnreadableFile(f"{what} {path} is UTF-16; save it as UTF-8 (it is read line by line)")
                if b"\x00" in raw:
                    raise UnreadableFile(f"{what} {path} line {lineno} contains NUL bytes: it is binary or UTF-16 "
                                         "without a byte-order mark; save it as UTF-8 text")
                try:
                    yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    raise UnreadableFile(f"{what} {path} line {lineno} is not UTF-8 (byte {raw[err.start]:#04x}); "
                                         "save it as UTF-8") from None
    except FileNotFoundError:
        raise UnreadableFile(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UnreadableFile(f"{what} {path} is a directory; give a file") from None
    except OSError as err:
        raise UnreadableFile(f"cannot read {what} {path}: {err.strerror or err}") from None


def check_json_depth(text: str, where: str) -> None:
    """Refuse JSON nested deeper than ``MAX_DEPTH``, counting brackets outside strings, before a parser recurses."""
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, token.start()) + 1
                raise UnreadableFile(f"{where} line {line}: lists and objects are nested more than {MAX_DEPTH} deep; "
                                     "no valid file is, check that it is the right file")
        elif char in "]}":
            depth -= 1


def parse_json(text: str, where: str) -> Any:
    """JSON text, depth-checked first; ``where`` names the file (and line) in errors."""
    check_json_depth(text, where)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UnreadableFile(f"{where} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None


def read_json(path: Path, what: str, limit: int = DATA_LIMIT) -> Any:
    return parse_json(read_text(path, what, limit), f"{what} {path}")


def read_jsonl(path: Path, what: str, limit: int = DATA_LIMIT) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every non-blank line; a bad line is an error naming its number."""
    for lineno, line in enumerate(read_text(path, what, limit).splitlines(), 1):
        if line.strip():
            yield lineno, parse_json(line, f"{what} {path} line {lineno}")


def read_yaml(path: Path, what: str, limit: int = CONFIG_LIMIT) -> Any:
    """One YAML document with ``yaml.safe_load``; an empty file is ``None``."""
    text = read_text(path, what, limit)
    try:
        depth = 0
        # The event stream is produced without recursion; composing the document recurses per level.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise UnreadableFile(f"{what} {path} line {event.start_mark.line + 1}: lists and mappings are "
                                         f"nested more than {MAX_DEPTH} deep; check that it is the right file")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise UnreadableFile(f"{what} {path} is not valid YAML: {one_line(err.problem or err.context)}{at}") from None
    except yaml.YAMLError as err:
        raise UnreadableFile(f"{what} {path} is not valid YAML: {one_line(err)}") from None


def validation_problems(err: ValidationError) -> list[tuple[str, str]]:
    """(where, problem) for each error of a pydantic ``ValidationError``, for ``summarize``."""
    return [(".".join(str(p) for p in e["loc"]) or "(whole file)", e["msg"].removeprefix("Value error, "))
            for e in err.errors()]


def summarize(what: str, problems: Sequence[tuple[str, str]], report: Path | None = None) -> str:
    """One line for many ``(item, problem)`` pairs: how many items, the most common problem, the first
    few; beyond those, every problem is written to ``report`` (or a named temporary file)."""
    items = list(dict.fromkeys(item for item, _ in problems))
    common, times = Counter(problem for _, problem in problems).most_common(1)[0]
    first = "; ".join(f"{item}: {one_line(problem, 160)}" for item, problem in problems[:SUMMARY_ITEMS])
    line = (f"{what}: {len(items)} invalid item(s), {len(problems)} problem(s); most common ({times}x): "
            f"{one_line(common, 160)}; first: {first}")
    if len(problems) > SUMMARY_ITEMS:
        text = "".join(f"{item}\t{' '.join(problem.split())}\n" for item, problem in problems)
        if report is None:
            with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="als-lm-problems-", delete=False,
                                             encoding="utf-8") as fh:
                fh.write(text)
            report = Path(fh.name)
        else:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(text, encoding="utf-8")
        line += f"; all {len(problems)} in {report}"
    return line
