"""The item pipeline: validate each document as a RawDocument and store the record in the job.

A document that fails validation is rejected with the field and reason; its record still
counts as done, so a restart does not fetch it again.
"""

from __future__ import annotations

from pydantic import ValidationError

from services.scraper.items import Record, rejection
from shared.schemas.corpus import RawDocument


class RecordPipeline:
    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_item(self, item: Record) -> Record:
        documents, rejected = [], list(item.rejected)
        for raw in item.documents:
            try:
                documents.append(RawDocument.model_validate(raw))
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "(document)"
                rejected.append(rejection("invalid", f"{raw.get('id', '?')}: {where}: {first['msg']}"))
        stats = self.crawler.stats
        added = self.crawler.spider.job.append(item.key, item.url, documents, rejected)
        stats.inc_value("als/documents", added)
        stats.inc_value("als/duplicate_documents", len(documents) - added)
        for r in rejected:
            stats.inc_value(f"als/rejected/{r['kind']}")
        return item
