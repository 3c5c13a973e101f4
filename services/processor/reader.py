"""Read raw JSONL shards (docs/scraping.md) into documents; refuse bad lines with a reason, not a crash.

Files are validated when read, not trusted: a line that is not UTF-8, not JSON, or not a
``RawDocument`` goes to the exclusion log as ``step: read`` and the rest of the file is read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from services.processor.pipeline import Document, RunLog
from shared.schemas.corpus import CATEGORIES, RawDocument

STEP = "read"


def read_raw(paths: Iterable[Path], log: RunLog) -> Iterator[Document]:
    seen: set[str] = set()
    for path in paths:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                where = f"{path.name}:{lineno}"
                if not raw.strip():
                    continue
                log.count(STEP, "lines")
                start = time.process_time()
                doc = parse_line(raw, where, log)
                log.seconds[STEP] += time.process_time() - start
                if doc is None:
                    continue
                if doc.id in seen:
                    log.exclude(STEP, "document", "duplicate_id", doc.id, doc.text, where=where)
                    continue
                seen.add(doc.id)
                log.count(STEP, "documents_out")
                yield doc


def parse_line(raw: bytes, where: str, log: RunLog) -> Document | None:
    def refuse(reason: str, detail: str) -> None:
        log.exclude(STEP, "document", reason, "", raw.decode("utf-8", "replace"), where=where, detail=detail)

    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return refuse("not_utf8", f"byte {err.start}: {err.reason}")
    try:
        data = json.loads(line)
    except json.JSONDecodeError as err:
        return refuse("invalid_json", str(err))
    try:
        doc = RawDocument.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in err.errors())
        return refuse("invalid_document", problems)
    if doc.category not in CATEGORIES:
        return refuse("unknown_category", f"metadata.category {doc.category!r} is not one of {CATEGORIES}")
    return Document(id=doc.id, source=doc.source, category=doc.category, title=doc.title, text=doc.text)
