"""What every corpus spider shares: the job it resumes, the document budget, and failures as records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import scrapy
from scrapy.exceptions import CloseSpider, IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import ConnectError, ConnectionLost, DNSLookupError, TimeoutError
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from services.scraper.items import Record, rejection
from services.scraper.jobstore import JobStore
from services.scraper.settings import ScrapeConfig


class CorpusSpider(scrapy.Spider):
    def __init__(self, config: ScrapeConfig, job: JobStore, **kwargs):
        super().__init__(**kwargs)
        self.config, self.job = config, job

    @classmethod
    def requests_per_second(cls, config: ScrapeConfig) -> float:
        raise NotImplementedError

    @staticmethod
    def today() -> date:
        return datetime.now(UTC).date()

    def check_budget(self) -> None:
        """Stop the crawl once ``max_documents`` are stored (counting those of earlier attempts)."""
        limit = self.config.max_documents
        if limit is not None and self.job.documents >= limit:
            raise CloseSpider("max_documents")

    def request(self, url: str, callback, records: list[tuple[str, str]], **kwargs) -> scrapy.Request:
        """A request for the records ``[(key, url), ...]``: if it fails, each is rejected with the reason."""
        meta = {**kwargs.pop("meta", {}), "records": records}
        return scrapy.Request(url, callback=callback, errback=self.failed, meta=meta, **kwargs)

    def failed(self, failure: Failure) -> Iterator[Record]:
        if failure.check(HttpError):
            kind, reason = "http", f"HTTP {failure.value.response.status} after retries"
        elif failure.check(IgnoreRequest) and "robots" in str(failure.value).lower():
            kind, reason = "robots", "disallowed by robots.txt"
        elif failure.check(ConnectError, ConnectionLost, DNSLookupError, TimeoutError, ResponseFailed,
                           ResponseNeverReceived, OSError):
            kind, reason = "network", f"{type(failure.value).__name__}: {failure.value}"
        else:
            kind, reason = "error", f"{type(failure.value).__name__}: {failure.value}"
        for key, url in failure.request.meta["records"]:
            yield Record(key=key, url=url, rejected=[rejection(kind, reason)])

    @staticmethod
    def reject(records: list[tuple[str, str]], kind: str, reason: str) -> Iterator[Record]:
        for key, url in records:
            yield Record(key=key, url=url, rejected=[rejection(kind, reason)])
