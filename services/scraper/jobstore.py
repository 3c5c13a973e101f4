"""A crawl's resumable state: Scrapy's JOBDIR plus a log of finished records keyed by source id.

``records.jsonl`` gets one line per finished record (its documents and rejections), flushed as it
is written. A crawl stopped at any point keeps every finished record; a line cut short by SIGKILL
is dropped on reopen and that record fetched again, and a document id already stored is never
written twice. Scrapy's request queue survives a graceful stop (SIGINT) but not SIGKILL, which
can leave it half-written: then it is discarded and the spider walks its listings again,
skipping the records already done.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

from shared.schemas.corpus import RawDocument

log = logging.getLogger(__name__)

RECORDS = "records.jsonl"
STATE = "job.json"
CLEAN = "scrapy.clean"


class JobStore:
    def __init__(self, directory: Path, fingerprint: str):
        self.dir = Path(directory)
        state = self.dir / STATE
        if state.exists() and json.loads(state.read_text()).get("fingerprint") != fingerprint:
            log.warning("%s holds a crawl with other settings; starting afresh", self.dir)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"fingerprint": fingerprint}))
        self.done: set[str] = set()
        self.doc_ids: set[str] = set()
        self._repair_and_load()
        self._log = (self.dir / RECORDS).open("a", encoding="utf-8")

    @property
    def documents(self) -> int:
        return len(self.doc_ids)

    def _repair_and_load(self) -> None:
        path = self.dir / RECORDS
        if not path.exists():
            return
        good = 0
        with path.open("rb") as f:
            for line in f:
                try:
                    record = json.loads(line) if line.endswith(b"\n") else None
                except json.JSONDecodeError:
                    record = None
                if record is None:
                    break
                self._remember(record)
                good += len(line)
        if good != path.stat().st_size:
            log.info("%s: dropping a record cut short by the last stop; it will be fetched again", path)
            with path.open("r+b") as f:
                f.truncate(good)
        if self.done:
            log.info("resuming: %d records (%d documents) already done", len(self.done), self.documents)

    def _remember(self, record: dict) -> None:
        self.done.add(record["key"])
        self.doc_ids.update(d["id"] for d in record["documents"])

    def scrapy_dir(self) -> Path:
        """Scrapy's JOBDIR: kept when the last crawl stopped cleanly, discarded otherwise."""
        marker, jobdir = self.dir / CLEAN, self.dir / "scrapy"
        if not marker.exists() and jobdir.exists():
            log.info("the last crawl did not stop cleanly; its request queue is discarded")
            shutil.rmtree(jobdir)
        marker.unlink(missing_ok=True)
        return jobdir

    def mark_clean(self) -> None:
        (self.dir / CLEAN).touch()

    def append(self, key: str, url: str, documents: list[RawDocument], rejected: list[dict]) -> int:
        """Store a finished record; returns how many of its documents were new."""
        new = []
        for doc in documents:
            if doc.id not in self.doc_ids:
                new.append(doc)
                self.doc_ids.add(doc.id)
        record = {"key": key, "url": url, "documents": [d.model_dump(mode="json") for d in new], "rejected": rejected}
        self._log.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._log.flush()
        self._remember(record)
        return len(new)

    def records(self) -> Iterator[dict]:
        self._log.flush()
        with (self.dir / RECORDS).open(encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)

    def documents_iter(self) -> Iterator[RawDocument]:
        for record in self.records():
            for doc in record["documents"]:
                yield RawDocument.model_validate(doc)

    def rejected_iter(self) -> Iterator[dict]:
        """Each (record, kind, reason) once, however often a restart met it."""
        seen = set()
        for record in self.records():
            for r in record["rejected"]:
                entry = {"key": record["key"], "url": record["url"], **r}
                ident = (entry["key"], entry["kind"], entry["reason"])
                if ident not in seen:
                    seen.add(ident)
                    yield entry

    def close(self) -> None:
        self._log.close()

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)
