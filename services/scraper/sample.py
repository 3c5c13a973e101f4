"""The bundled sample corpus: ``sample/*.jsonl``, validated line by line as RawDocument."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from shared.errors import InvalidInput
from shared.schemas.corpus import RawDocument


def sample_files(directory: Path) -> list[Path]:
    files = sorted(Path(directory).glob("*.jsonl"))
    if not files:
        raise InvalidInput(f"no sample documents: {directory} has no *.jsonl files")
    return files


def read_sample(files: list[Path]) -> list[RawDocument]:
    """Every document; a bad line is an error naming its file and line, and nothing is published."""
    docs: list[RawDocument] = []
    first_seen: dict[str, str] = {}
    for path in files:
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                where = f"{path}:{lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise InvalidInput(f"{where}: not valid UTF-8 (byte offset {err.start} in the line)") from None
                if not line.strip():
                    continue
                try:
                    doc = RawDocument.model_validate_json(line)
                except ValidationError as err:
                    first = err.errors()[0]
                    field = ".".join(str(p) for p in first["loc"]) or "(line)"
                    raise InvalidInput(f"{where}: not a valid RawDocument: {field}: {first['msg']}") from None
                if doc.id in first_seen:
                    raise InvalidInput(f"{where}: duplicate id {doc.id!r}, first at {first_seen[doc.id]}")
                first_seen[doc.id] = where
                docs.append(doc)
    return docs
