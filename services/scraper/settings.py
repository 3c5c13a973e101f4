"""Scraper settings: section ``scrape`` (env ``ALS_SCRAPE__*``), one sub-section per spider (docs/scraping.md).

Base URLs default to the real public endpoints and are settings so tests point them at 127.0.0.1:
``ALS_SCRAPE__PMC__EUTILS_URL=http://127.0.0.1:8080/eutils``. The NCBI key is also read from
``ALS_NCBI_API_KEY``, the name NCBI's own documentation uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from shared.settings import NOT_FINGERPRINTED, CommonSettings, affects

HERE = Path(__file__).resolve().parent
Source = Literal["sample", "pmc", "clinicaltrials", "web", "wikipedia"]
"""What ``als-lm scrape`` takes: the bundled sample or one spider; its run is ``scrape-<source>``."""
CRAWLS = tuple(f"scrape-{source}" for source in get_args(Source) if source != "sample")

# §2.2.1: MeSH and keyword combinations.
PMC_QUERIES = [
    '"amyotrophic lateral sclerosis"[MeSH]',
    '"motor neuron disease"[MeSH]',
    'ALS AND (genetics OR treatment OR diagnosis OR pathology)',
]


class PmcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eutils_url: str = Field(
        "https://eutils.ncbi.nlm.nih.gov/entrez/eutils", description="E-utilities base (esearch.fcgi, efetch.fcgi)"
    )
    queries: list[str] = Field(PMC_QUERIES, min_length=1, description="esearch terms (§2.2.1)")
    open_access_filter: str = Field(
        '"open access"[filter]', description="ANDed to every query: the PMC open-access subset only"
    )
    priority_filter: str = Field(
        '(review[pt] OR "meta-analysis"[pt])',
        description="reviews and meta-analyses are searched and fetched first (§2.2.1); '' disables",
    )
    search_batch: int = Field(500, ge=1, le=10_000, description="esearch retmax: ids per page (§2.2.1)")
    fetch_batch: int = Field(50, ge=1, le=200, description="ids per efetch request")
    requests_per_second: float = Field(3.0, gt=0, le=3.0, description="NCBI's limit without an API key",
                                       json_schema_extra=NOT_FINGERPRINTED)
    requests_per_second_with_key: float = Field(10.0, gt=0, le=10.0, description="NCBI's limit with a key",
                                                json_schema_extra=NOT_FINGERPRINTED)
    tool: str = Field("als-lm", description="the `tool` parameter NCBI asks every client to send",
                      json_schema_extra=NOT_FINGERPRINTED)
    email: str | None = Field(None, description="the `email` parameter NCBI uses to contact heavy users",
                              json_schema_extra=NOT_FINGERPRINTED)


class ClinicalTrialsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_url: str = Field("https://clinicaltrials.gov/api/v2", description="ClinicalTrials.gov API v2 base")
    condition: str = Field("amyotrophic lateral sclerosis", description="query.cond (§2.2.2)")
    page_size: int = Field(100, ge=1, le=1000, description="studies per page (the API's maximum is 1000)")
    requests_per_second: float = Field(
        0.8, gt=0, le=10.0, description="the API allows about 50 requests a minute per client",
        json_schema_extra=NOT_FINGERPRINTED,
    )


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources_file: Path = Field(HERE / "sources.yaml", description="the curated list (URL, category, licence, ethics)",
                               json_schema_extra=NOT_FINGERPRINTED)  # its content is a run input
    min_text_chars: int = Field(
        400, ge=1, description="a page whose main text is shorter is rejected (error page served with 200)"
    )
    requests_per_second: float = Field(1.0, gt=0, le=10.0, description="per site", json_schema_extra=NOT_FINGERPRINTED)


class WikipediaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_url: str = Field("https://en.wikipedia.org/w/api.php", description="MediaWiki action API endpoint")
    maxlag: int = Field(5, ge=0, description="MediaWiki's maxlag: back off when replicas lag (API etiquette)",
                        json_schema_extra=NOT_FINGERPRINTED)
    requests_per_second: float = Field(2.0, gt=0, le=10.0, description="requests are serial, as the etiquette asks",
                                       json_schema_extra=NOT_FINGERPRINTED)


class ScrapeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Source = Field(
        "sample", description="what a run scrapes: the sample or a spider (`als-lm scrape SPIDER`)",
        json_schema_extra=NOT_FINGERPRINTED,  # the stage's name carries it
    )
    max_documents: int | None = Field(None, ge=1, description="stop after this many documents; None = all",
                                      json_schema_extra=affects(*CRAWLS))
    job_dir: Path | None = Field(
        None, description="resumable crawl state; None = <work_dir>/scrape-jobs. Removed once a run is published",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    # robots.txt rules and some sites' answers depend on the user agent
    user_agent: str = Field("ALS-LM research crawler (+https://github.com/als-lm)", min_length=1,
                            json_schema_extra=affects(*CRAWLS))
    ncbi_api_key: SecretStr | None = Field(None, description="raises the PMC rate to 10 requests/s",
                                           json_schema_extra=NOT_FINGERPRINTED)
    retry_times: int = Field(5, ge=0, description="retries of 429/5xx and network errors",
                             json_schema_extra=NOT_FINGERPRINTED)
    backoff_base: float = Field(1.0, ge=0, description="first retry waits this many seconds, then doubles",
                                json_schema_extra=NOT_FINGERPRINTED)
    backoff_max: float = Field(60.0, ge=0, description="longest wait between retries, Retry-After included",
                               json_schema_extra=NOT_FINGERPRINTED)
    autothrottle_max_delay: float = Field(30.0, gt=0, description="AutoThrottle's ceiling on the delay, seconds",
                                          json_schema_extra=NOT_FINGERPRINTED)
    download_timeout: float = Field(60.0, gt=0, json_schema_extra=NOT_FINGERPRINTED)
    shard_documents: int = Field(5000, ge=1, description="documents per published docs/part-NNNNN.jsonl")
    sample_dir: Path = Field(HERE / "sample", description="the bundled sample corpus (*.jsonl)",
                             json_schema_extra=NOT_FINGERPRINTED)  # its files are run inputs
    pmc: PmcConfig = Field(PmcConfig(), json_schema_extra=affects("scrape-pmc"))
    clinicaltrials: ClinicalTrialsConfig = Field(ClinicalTrialsConfig(), json_schema_extra=affects("scrape-clinicaltrials"))
    web: WebConfig = Field(WebConfig(), json_schema_extra=affects("scrape-web"))
    wikipedia: WikipediaConfig = Field(WikipediaConfig(), json_schema_extra=affects("scrape-wikipedia"))

    @model_validator(mode="after")
    def _backoff_order(self) -> ScrapeConfig:
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must be at least backoff_base")
        return self


class ScraperSettings(CommonSettings):
    scrape: ScrapeConfig = ScrapeConfig()
    ncbi_api_key: SecretStr | None = Field(
        None, exclude=True, description="ALS_NCBI_API_KEY; used when scrape.ncbi_api_key is not set"
    )

    @model_validator(mode="after")
    def _ncbi_key(self) -> ScraperSettings:
        if self.scrape.ncbi_api_key is None and self.ncbi_api_key is not None:
            self.scrape = self.scrape.model_copy(update={"ncbi_api_key": self.ncbi_api_key})
        return self

    def job_dir(self, spider: str) -> Path:
        return (self.scrape.job_dir or self.work_dir / "scrape-jobs") / spider
