"""PubMed Central through E-utilities (§2.2.1): esearch pages, efetch batches, JATS parsing.

Reviews and meta-analyses of every query are searched first (higher Scrapy priority); ids
already stored by an earlier attempt of the crawl are not fetched again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar
from urllib.parse import urlencode

from services.scraper.items import Record, rejection
from services.scraper.parsing import Malformed
from services.scraper.parsing.eutils import parse_esearch
from services.scraper.parsing.jats import NOTICE_TYPES, BadArticle, article_documents, parse_articleset
from services.scraper.spiders.base import CorpusSpider


def article_url(pmcid: str) -> str:
    return f"https://pmc.ncbi.nlm.nih.gov/articles/{pmcid}/"


class PmcSpider(CorpusSpider):
    name = "pmc"
    # E-utilities is an API whose usage policy (rate, tool/email, key) governs access, not robots.txt.
    custom_settings: ClassVar[dict] = {"ROBOTSTXT_OBEY": False}

    @classmethod
    def requests_per_second(cls, config) -> float:
        pmc = config.pmc
        return pmc.requests_per_second_with_key if config.ncbi_api_key else pmc.requests_per_second

    def __init__(self, config, job, **kwargs):
        super().__init__(config, job, **kwargs)
        self.pmc = config.pmc
        self.queued: set[str] = set()

    def terms(self) -> list[tuple[str, int]]:
        """(esearch term, priority): each query restricted to reviews first, then unrestricted."""
        out = []
        for query in self.pmc.queries:
            term = f"({query}) AND {self.pmc.open_access_filter}" if self.pmc.open_access_filter else query
            if self.pmc.priority_filter:
                out.append((f"{term} AND {self.pmc.priority_filter}", 10))
            out.append((term, 0))
        return out

    def url(self, endpoint: str, **params) -> tuple[str, str]:
        """(URL to request, URL safe to record): the API key never reaches an artifact."""
        params["tool"] = self.pmc.tool
        if self.pmc.email:
            params["email"] = self.pmc.email
        public = f"{self.pmc.eutils_url}/{endpoint}?{urlencode(params)}"
        key = self.config.ncbi_api_key
        return (f"{public}&{urlencode({'api_key': key.get_secret_value()})}" if key else public), public

    def search(self, term: str, priority: int, retstart: int, webenv: str | None = None):
        params = {"db": "pmc", "term": term, "retmode": "json", "retmax": self.pmc.search_batch,
                  "retstart": retstart, "usehistory": "y"}
        if webenv:
            params["WebEnv"] = webenv
        url, public = self.url("esearch.fcgi", **params)
        return self.request(
            url, self.parse_search, records=[(f"esearch {term} @{retstart}", public)], priority=priority,
            cb_kwargs={"term": term, "priority": priority, "retstart": retstart},
            # The first page of each query is asked again on every restart: it is where the walk begins.
            dont_filter=retstart == 0,
        )

    async def start(self):
        for term, priority in self.terms():
            yield self.search(term, priority, 0)

    def parse_search(self, response, term: str, priority: int, retstart: int):
        self.check_budget()
        try:
            page = parse_esearch(response.body)
        except Malformed as err:
            yield from self.reject(response.meta["records"], "malformed", f"esearch: {err}")
            return
        fresh = [pmcid for pmcid in (f"PMC{i}" for i in page.ids) if pmcid not in self.job.done | self.queued]
        self.queued.update(fresh)
        for start in range(0, len(fresh), self.pmc.fetch_batch):
            batch = fresh[start : start + self.pmc.fetch_batch]
            url, _ = self.url("efetch.fcgi", db="pmc", id=",".join(p.removeprefix("PMC") for p in batch), retmode="xml")
            yield self.request(url, self.parse_fetch, records=[(p, article_url(p)) for p in batch], priority=priority)
        following = retstart + len(page.ids)
        if page.ids and following < page.count:
            yield self.search(term, priority, following, page.webenv)

    def parse_fetch(self, response) -> Iterator[Record]:
        records = response.meta["records"]
        try:
            parsed = parse_articleset(response.body)
        except Malformed as err:
            yield from self.reject(records, "malformed", f"efetch: {err}")
            return
        articles = {a.pmcid: a for a in parsed if a.pmcid}
        unattributed = [a.reason for a in parsed if isinstance(a, BadArticle) and not a.pmcid]
        today = self.today()
        for pmcid, url in records:
            article = articles.get(pmcid)
            if article is None:
                why = "not in the efetch reply" + (
                    f" ({len(unattributed)} article(s) without a PMC id were: {'; '.join(unattributed)})"
                    if unattributed else "")
                yield Record(pmcid, url, rejected=[rejection("missing", why)])
            elif isinstance(article, BadArticle):
                yield Record(pmcid, url, rejected=[rejection("malformed", f"efetch article: {article.reason}")])
            elif article.article_type in NOTICE_TYPES:
                yield Record(pmcid, url, rejected=[rejection(
                    "notice", f"article type {article.article_type} is a notice about another article, not prose")])
            elif not article.licence.allowed:
                yield Record(pmcid, url, rejected=[rejection(
                    "licence", f"licence {article.licence.id} is not CC-BY, CC-BY-NC, CC0 or public domain")])
            elif docs := article_documents(article, today):
                yield Record(pmcid, url, documents=docs)
            else:
                yield Record(pmcid, url, rejected=[rejection("empty", "neither an abstract nor body text")])
