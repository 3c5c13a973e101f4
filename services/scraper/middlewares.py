"""Downloader middlewares: retries with a site-wide backoff, and robots.txt for concurrent requests.

Retries: Scrapy's RetryMiddleware, plus a pause for the whole site before the retry.

Scrapy retries at once; a server answering 429 or 503 asks for less traffic, so the download
slot's delay is raised to ``Retry-After`` (or an exponential backoff) for every request to that
site. AutoThrottle then brings the delay back down as successful responses arrive.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from time import monotonic

from scrapy import Request
from scrapy.downloadermiddlewares import robotstxt as scrapy_robotstxt
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.utils.httpobj import urlparse_cached


def retry_after(value: bytes | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class BackoffRetryMiddleware(RetryMiddleware):
    def __init__(self, settings):
        super().__init__(settings)
        self.base = settings.getfloat("BACKOFF_BASE")
        self.cap = settings.getfloat("BACKOFF_MAX")

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if response.status in self.retry_http_codes and not request.meta.get("dont_retry", False):
            attempt = request.meta.get("retry_times", 0)
            wait = retry_after(response.headers.get("Retry-After"))
            self._slow_down(request, self.base * 2**attempt if wait is None else wait)
        return super().process_response(request, response)

    def process_exception(self, request: Request, exception: Exception):
        if isinstance(exception, self.exceptions_to_retry):
            self._slow_down(request, self.base * 2 ** request.meta.get("retry_times", 0))
        return super().process_exception(request, exception)

    def _slow_down(self, request: Request, seconds: float) -> None:
        downloader = self.crawler.engine.downloader
        slot = downloader.slots.get(downloader.get_slot_key(request))
        if slot is not None:
            slot.delay = max(slot.delay, min(seconds, self.cap))
            slot.lastseen = monotonic()  # the wait counts from this answer, not from the request
            self.crawler.stats.max_value("als/backoff_max_delay", slot.delay)


class RobotsTxtMiddleware(scrapy_robotstxt.RobotsTxtMiddleware):
    """Scrapy's, with one fix: every request that waits while robots.txt downloads sees the parsed file.

    The waiters share one Deferred, and Twisted's ``Deferred.asFuture`` passes its result to the
    first waiter and ``None`` to the others, which Scrapy reads as "no robots.txt, all allowed".
    """

    async def robot_parser(self, request: Request):
        parser = await super().robot_parser(request)
        return parser if parser is not None else self._parsers.get(urlparse_cached(request).netloc)
