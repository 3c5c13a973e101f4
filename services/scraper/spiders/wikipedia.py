"""Wikipedia (§2.2.5): curated titles through the MediaWiki API, as plain-text extracts.

One title per request: TextExtracts returns whole-article extracts for one page at a time. A
reply with ``continue`` and no extract yet is followed (the same query plus its parameters) until the
extract arrives; a continuation that repeats itself rejects the title.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlencode

from services.scraper.items import Record, rejection
from services.scraper.parsing import Malformed
from services.scraper.parsing.mediawiki import continuation, merge_pages, page_document, parse_query
from services.scraper.sources import load_sources
from services.scraper.spiders.base import CorpusSpider


class WikipediaSpider(CorpusSpider):
    name = "wikipedia"
    # The action API is governed by the API etiquette (user agent, serial requests, maxlag);
    # robots.txt disallows /w/ for the website's crawlers.
    custom_settings: ClassVar[dict] = {"ROBOTSTXT_OBEY": False}

    @classmethod
    def requests_per_second(cls, config) -> float:
        return config.wikipedia.requests_per_second

    async def start(self):
        wiki = self.config.wikipedia
        for title in load_sources(self.config.web.sources_file).wikipedia:
            if title in self.job.done:
                continue
            params = {"action": "query", "format": "json", "formatversion": 2, "prop": "extracts|info",
                      "inprop": "url", "explaintext": 1, "exsectionformat": "wiki", "redirects": 1,
                      "maxlag": wiki.maxlag, "titles": title}
            page_url = f"https://en.wikipedia.org/wiki/{title.replace(' ', '_')}"
            yield self.request(f"{wiki.api_url}?{urlencode(params)}", self.parse_extract,
                               records=[(title, page_url)], dont_filter=True, meta={"params": params, "pages": []})

    def parse_extract(self, response):
        self.check_budget()
        [(title, url)] = response.meta["records"]
        params = response.meta["params"]
        try:
            pages = merge_pages(response.meta["pages"], parse_query(response.body))
            more = continuation(response.body)
        except Malformed as err:
            yield from self.reject(response.meta["records"], "malformed", str(err))
            return
        # Only the extract is asked for: once the page has it, a 'continue' is about other properties.
        if more and not any(page.extract for page in pages):
            if all(params.get(k) == v for k, v in more.items()):
                yield from self.reject(response.meta["records"], "malformed", f"'continue' repeats itself: {more}")
                return
            params = {**params, **more}
            yield self.request(f"{self.config.wikipedia.api_url}?{urlencode(params)}", self.parse_extract,
                               records=response.meta["records"], dont_filter=True,
                               meta={"params": params, "pages": pages})
            return
        page = pages[0] if pages else None
        if page is None or page.missing or not page.extract:
            yield Record(title, url, rejected=[rejection("missing", "no such article, or an empty extract")])
            return
        doc = page_document(page, self.today())
        yield Record(title, doc["url"], documents=[doc])
