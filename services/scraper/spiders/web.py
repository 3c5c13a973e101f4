"""Curated educational pages and published narratives (§2.2.3-2.2.4): main text by trafilatura.

Only the URLs in sources.yaml are fetched; links are never followed. robots.txt is obeyed.
"""

from __future__ import annotations

from scrapy.http import TextResponse

from services.scraper.items import Record
from services.scraper.parsing import Malformed
from services.scraper.parsing.webpage import main_text, page_document
from services.scraper.sources import load_sources
from services.scraper.spiders.base import CorpusSpider


class WebSpider(CorpusSpider):
    name = "web"

    @classmethod
    def requests_per_second(cls, config) -> float:
        return config.web.requests_per_second

    async def start(self):
        for source in load_sources(self.config.web.sources_file).web:
            if source.url not in self.job.done:
                yield self.request(source.url, self.parse_page, records=[(source.url, source.url)],
                                   cb_kwargs={"source": source.model_dump()}, dont_filter=True)

    def parse_page(self, response, source: dict):
        self.check_budget()
        records = response.meta["records"]
        if not isinstance(response, TextResponse):
            yield from self.reject(records, "malformed", f"not a text page ({response.headers.get('Content-Type')})")
            return
        try:
            title, text = main_text(response.body, response.encoding, source["url"], self.config.web.min_text_chars)
        except Malformed as err:
            yield from self.reject(records, "malformed", str(err))
            return
        yield Record(source["url"], source["url"], documents=[page_document(source, title, text, self.today())])
