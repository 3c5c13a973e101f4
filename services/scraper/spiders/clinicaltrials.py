"""ClinicalTrials.gov API v2 (§2.2.2): ``/studies`` for the condition, following ``nextPageToken``."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlencode

from services.scraper.items import Record
from services.scraper.parsing import Malformed
from services.scraper.parsing.ctgov import FIELDS, nct_id, parse_studies_page, study_document
from services.scraper.spiders.base import CorpusSpider


class ClinicalTrialsSpider(CorpusSpider):
    name = "clinicaltrials"
    # An API with its own published rate limit; its robots.txt addresses the website's crawlers.
    custom_settings: ClassVar[dict] = {"ROBOTSTXT_OBEY": False}

    @classmethod
    def requests_per_second(cls, config) -> float:
        return config.clinicaltrials.requests_per_second

    def page(self, token: str | None):
        ct = self.config.clinicaltrials
        params = {"query.cond": ct.condition, "pageSize": ct.page_size, "format": "json", "fields": FIELDS,
                  "countTotal": "true"}
        if token:
            params["pageToken"] = token
        url = f"{ct.api_url}/studies?{urlencode(params)}"
        return self.request(url, self.parse_page, records=[(f"studies page {token or 'first'}", url)],
                            dont_filter=token is None)

    async def start(self):
        yield self.page(None)

    def parse_page(self, response):
        self.check_budget()
        try:
            page = parse_studies_page(response.body)
        except Malformed as err:
            yield from self.reject(response.meta["records"], "malformed", f"studies page: {err}")
            return
        today = self.today()
        for position, study in enumerate(page.studies):
            try:
                nct = nct_id(study)
            except Malformed as err:
                yield from self.reject([(f"{response.meta['records'][0][0]} #{position}", response.url)],
                                       "malformed", str(err))
                continue
            if nct not in self.job.done:
                doc = study_document(study, today)
                yield Record(nct, doc["url"], documents=[doc])
        if page.next_page_token:
            yield self.page(page.next_page_token)
