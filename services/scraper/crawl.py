"""Run one spider in this process with Scrapy's CrawlerProcess, resuming its job if one is pending."""

from __future__ import annotations

import logging

from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from services.scraper import scrapy_settings
from services.scraper.jobstore import JobStore
from services.scraper.settings import ScrapeConfig
from services.scraper.spiders import SPIDERS

log = logging.getLogger(__name__)

# The delay is 10% longer than 1/rate, so jitter in network latency cannot push a one-second
# window, as the server counts it, over the limit.
MARGIN = 1.1

# Scrapy counters worth keeping in the run's metrics.
KEPT_STATS = (
    "downloader/request_count", "downloader/response_count", "retry/count", "retry/max_reached",
    "robotstxt/forbidden", "als/documents", "als/duplicate_documents", "als/backoff_max_delay",
)


def crawler_settings(spider: str, config: ScrapeConfig, job: JobStore, log_level: str) -> Settings:
    delay = MARGIN / SPIDERS[spider].requests_per_second(config)
    settings = Settings()
    settings.setmodule(scrapy_settings, priority="project")
    settings.setdict(
        {
            "USER_AGENT": config.user_agent,
            "DOWNLOAD_DELAY": delay,
            "AUTOTHROTTLE_START_DELAY": delay,
            "AUTOTHROTTLE_MAX_DELAY": max(delay, config.autothrottle_max_delay),
            "RETRY_TIMES": config.retry_times,
            "BACKOFF_BASE": config.backoff_base,
            "BACKOFF_MAX": config.backoff_max,
            "DOWNLOAD_TIMEOUT": config.download_timeout,
            "JOBDIR": str(job.scrapy_dir()),
            "LOG_LEVEL": log_level,
            "LOG_INSTALL_ROOT_HANDLER": False,  # records go through shared.log's handler
        },
        priority="project",
    )
    return settings


class _Outcome:
    """Collects what the crawler reports as it closes (receivers must outlive the crawl)."""

    def __init__(self):
        self.reason = "not started"
        self.stats: dict = {}

    def closed(self, spider, reason: str) -> None:
        self.reason = reason
        self.stats = {k: v for k, v in spider.crawler.stats.get_stats().items() if k in KEPT_STATS or
                      k.startswith(("als/rejected/", "downloader/response_status_count/"))}


def crawl(spider: str, config: ScrapeConfig, job: JobStore, log_level: str = "WARNING") -> _Outcome:
    """Crawl until done, the budget is spent or SIGINT; returns Scrapy's finish reason and counters."""
    # CrawlerProcess() sets Scrapy's loggers to DEBUG and logs its start-up banner; keep those out of
    # shared.log's handler, then let Scrapy through at WARNING (DEBUG with --log-level DEBUG).
    scrapy_log = logging.getLogger("scrapy")
    scrapy_log.propagate = False
    process = CrawlerProcess(crawler_settings(spider, config, job, log_level))
    scrapy_log.propagate = True
    scrapy_log.setLevel(log_level if log_level == "DEBUG" else "WARNING")
    crawler = process.create_crawler(SPIDERS[spider])
    outcome = _Outcome()
    crawler.signals.connect(outcome.closed, signal=signals.spider_closed)
    # engine_stopped comes after the scheduler has saved its queue: JOBDIR is consistent from here.
    crawler.signals.connect(job.mark_clean, signal=signals.engine_stopped)
    process.crawl(crawler, config=config, job=job)
    process.start()
    log.info("%s: crawl ended (%s); %d documents stored", spider, outcome.reason, job.documents)
    return outcome
