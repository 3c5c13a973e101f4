"""The Scrapy project's settings: politeness, retries and the item pipeline, as data.

``crawl.py`` layers the values that come from ``ScrapeConfig`` on top (the rate, the user
agent, the JOBDIR); spiders of APIs switch robots.txt off in their ``custom_settings``.
"""

BOT_NAME = "als-lm"

# Politeness (§2.2): robots.txt, one request at a time per site, a fixed delay that AutoThrottle
# may raise but never lower (DOWNLOAD_DELAY is its floor), no jitter that would dip below it.
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 1
DOWNLOAD_DELAY_JITTER = 0.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0

# Retries on throttling and server errors, with a site-wide backoff; robots.txt with a fix for
# requests that wait on it together (middlewares.py).
RETRY_ENABLED = True
RETRY_HTTP_CODES = [408, 429, 500, 502, 503, 504, 522, 524]
RETRY_GIVE_UP_LOG_LEVEL = "WARNING"  # the record is rejected with the reason; the crawl goes on
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "services.scraper.middlewares.BackoffRetryMiddleware": 550,
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "services.scraper.middlewares.RobotsTxtMiddleware": 100,
}

ITEM_PIPELINES = {"services.scraper.pipelines.RecordPipeline": 300}

COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
# Article batches from efetch run to tens of megabytes; anything past this is not a page.
DOWNLOAD_MAXSIZE = 256 * 1024 * 1024
DOWNLOAD_WARNSIZE = 64 * 1024 * 1024
