"""Each spider end to end against recorded-format responses on 127.0.0.1: pages, rates, robots.txt,
retries and every malformed case, down to the published run."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from services.scraper.parsing.webpage import page_id

pytestmark = pytest.mark.slow

PMC_SMALL = {"ALS_SCRAPE__PMC__QUERIES": '["ALS"]', "ALS_SCRAPE__PMC__SEARCH_BATCH": "2",
             "ALS_SCRAPE__PMC__FETCH_BATCH": "2"}


def most_in_one_second(hits) -> int:
    times = sorted(h.t for h in hits)
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


def ok(result) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def test_pmc_pages_search_fetches_in_batches_and_keeps_permissive_licences(scraper, fixture_server):
    ok(scraper.run("pmc", **PMC_SMALL))
    docs, rejected, metrics = scraper.published("pmc")
    assert [d["id"] for d in docs] == [  # reviews first, then the rest of the search
        "pmc-PMC10000001-abstract", "pmc-PMC10000001-body", "pmc-PMC10000005-body",
        "pmc-PMC10000002-abstract", "pmc-PMC10000002-body", "pmc-PMC10000004-abstract",
    ]
    assert rejected == [{"key": "PMC10000003", "url": "https://pmc.ncbi.nlm.nih.gov/articles/PMC10000003/",
                         "kind": "licence",
                         "reason": "licence CC-BY-NC-ND-4.0 is not CC-BY, CC-BY-NC, CC0 or public domain"}]
    assert metrics["documents"] == 6 and metrics["rejected_by_kind"] == {"licence": 1}

    searches = fixture_server.requests("/eutils/esearch.fcgi")
    general = [h for h in searches if "review[pt]" not in h.query["term"][0]]
    assert [h.query["retstart"] for h in general] == [["0"], ["2"], ["4"]]  # 5 ids, pages of 2
    assert all(h.query["term"][0].endswith('AND "open access"[filter]') for h in general)
    assert "WebEnv" in general[1].query  # later pages stay in the history server's environment
    fetches = fixture_server.requests("/eutils/efetch.fcgi")
    assert all(len(h.query["id"][0].split(",")) <= 2 for h in fetches)
    assert all(h.query["tool"] == ["als-lm"] and "api_key" not in h.query for h in fixture_server.hits)
    assert {h.headers["User-Agent"] for h in fixture_server.hits} == {
        "ALS-LM research crawler (+https://github.com/als-lm)"}
    # No key: at most 3 requests in any one second.
    assert most_in_one_second(fixture_server.hits) <= 3
    times = [h.t for h in fixture_server.hits]
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.9 / 3


def test_pmc_with_an_api_key_runs_at_up_to_10_per_second_and_never_records_the_key(scraper, fixture_server):
    fixture_server.pmc_ids = [str(20000000 + i) for i in range(20)]
    ok(scraper.run("pmc", **PMC_SMALL, ALS_NCBI_API_KEY="secret-key-123", ALS_SCRAPE__PMC__PRIORITY_FILTER=""))
    docs, _, _ = scraper.published("pmc")
    assert len(docs) == 40
    assert all(h.query.get("api_key") == ["secret-key-123"] for h in fixture_server.hits)
    times = [h.t for h in fixture_server.hits]
    assert 3 < most_in_one_second(fixture_server.hits) <= 10
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.9 / 10
    published = b"".join(scraper.store.get_bytes(k) for k in scraper.store.list())
    assert b"secret-key-123" not in published


def test_pmc_malformed_replies_are_rejected_with_reasons_and_the_crawl_goes_on(scraper, fixture_server):
    fixture_server.truncate_ids = {"10000002"}
    queries = '["ALS", "HTML-ERROR", "BAD-JSON", "NCBI-ERROR"]'
    ok(scraper.run("pmc", **{**PMC_SMALL, "ALS_SCRAPE__PMC__QUERIES": queries},
                   ALS_NCBI_API_KEY="k", ALS_SCRAPE__PMC__PRIORITY_FILTER=""))
    docs, rejected, metrics = scraper.published("pmc")
    # Batches of two: (1, 2) arrives truncated, (3, 4) and (5) parse.
    assert {d["metadata"]["pmcid"] for d in docs} == {"PMC10000004", "PMC10000005"}
    by_key = {r["key"].split(" @")[0]: r for r in rejected}
    for pmcid in ("PMC10000001", "PMC10000002"):
        assert by_key[pmcid]["kind"] == "malformed"
        assert by_key[pmcid]["reason"].startswith("efetch: truncated or invalid XML")
    assert by_key["PMC10000003"]["kind"] == "licence"
    assert by_key['esearch (HTML-ERROR) AND "open access"[filter]']["reason"].startswith("esearch: an HTML page")
    assert by_key['esearch (BAD-JSON) AND "open access"[filter]']["reason"].startswith("esearch: invalid JSON")
    assert by_key['esearch (NCBI-ERROR) AND "open access"[filter]']["reason"] == \
        "esearch: esearch error: Invalid query: unbalanced parentheses"
    assert metrics["rejected_by_kind"] == {"malformed": 5, "licence": 1}


def test_throttled_request_is_retried_after_retry_after(scraper, fixture_server):
    fixture_server.flaky_left = 1
    ok(scraper.run("pmc", **{**PMC_SMALL, "ALS_SCRAPE__PMC__QUERIES": '["FLAKY"]'},
                   ALS_NCBI_API_KEY="k", ALS_SCRAPE__PMC__PRIORITY_FILTER=""))
    docs, _, metrics = scraper.published("pmc")
    assert len(docs) == 6 and metrics["crawl"]["retry/count"] == 1
    first, second = fixture_server.requests("/eutils/esearch.fcgi")[:2]
    assert first.query == second.query and second.t - first.t >= 1.0  # Retry-After: 1 honoured


def test_clinicaltrials_follows_next_page_token_and_rejects_a_cut_short_page(scraper, fixture_server):
    ok(scraper.run("clinicaltrials", ALS_SCRAPE__CLINICALTRIALS__REQUESTS_PER_SECOND="10",
                   ALS_SCRAPE__CLINICALTRIALS__PAGE_SIZE="2"))
    docs, rejected, _ = scraper.published("clinicaltrials")
    assert [d["id"] for d in docs] == ["ctgov-NCT02623699", "ctgov-NCT03127514", "ctgov-NCT00844454"]
    assert all("LOCATION-MARKER" not in d["text"] and "CONTACT-MARKER" not in d["text"] for d in docs)
    [bad] = rejected
    assert bad["kind"] == "malformed" and bad["reason"].startswith("studies page: invalid JSON")
    pages = fixture_server.requests("/ctgov/studies")
    assert [h.query.get("pageToken") for h in pages] == [None, ["NF0g5JGBlPMuwQY"], ["NF0g5JGBlPMuwQZ"]]
    assert pages[0].query["query.cond"] == ["amyotrophic lateral sclerosis"]
    assert "contactsLocationsModule" not in pages[0].query["fields"][0]


def write_sources(path: Path, base_url: str, titles: list[str] | None = None) -> Path:
    web = [
        {"url": f"{base_url}/web/fact_sheet.html", "category": "educational", "publisher": "Example Institute",
         "license": "public-domain"},
        {"url": f"{base_url}/web/narrative.html", "category": "narrative", "publisher": "An essay collection",
         "license": "CC-BY-4.0", "justification": "Published by its author under an open licence."},
        {"url": f"{base_url}/web/not_found.html", "category": "educational", "publisher": "Soft 404",
         "license": "public-domain"},
        {"url": f"{base_url}/web/latin1_declared_utf8.html", "category": "supplementary",
         "publisher": "Mis-encoded", "license": "public-domain"},
        {"url": f"{base_url}/web/private/fact_sheet.html", "category": "educational",
         "publisher": "Disallowed by robots.txt", "license": "public-domain"},
        {"url": f"{base_url}/web/gone.html", "category": "educational", "publisher": "Gone", "license": "public-domain"},
    ]
    path.write_text(yaml.safe_dump({"web": web, "wikipedia": titles or []}))
    return path


def test_web_obeys_robots_txt_extracts_main_text_and_rejects_bad_pages(scraper, fixture_server, tmp_path):
    sources = write_sources(tmp_path / "sources.yaml", fixture_server.base_url)
    ok(scraper.run("web", ALS_SCRAPE__WEB__SOURCES_FILE=str(sources), ALS_SCRAPE__WEB__REQUESTS_PER_SECOND="10"))
    docs, rejected, _ = scraper.published("web")
    base = fixture_server.base_url
    assert [d["id"] for d in docs] == [page_id(f"{base}/web/fact_sheet.html"), page_id(f"{base}/web/narrative.html")]
    narrative = docs[1]
    assert narrative["metadata"] == {"category": "narrative", "publisher": "An essay collection",
                                     "justification": "Published by its author under an open licence."}
    assert all("FOOTER-MARKER" not in d["text"] and "COOKIE-MARKER" not in d["text"] for d in docs)
    kinds = {r["url"].rsplit("/web/", 1)[1]: (r["kind"], r["reason"]) for r in rejected}
    assert kinds["not_found.html"][0] == "malformed" and "error page" in kinds["not_found.html"][1]
    assert kinds["latin1_declared_utf8.html"] == ("malformed", "bytes are not valid utf-8, the encoding the page declares")
    assert kinds["private/fact_sheet.html"] == ("robots", "disallowed by robots.txt")
    assert kinds["gone.html"] == ("http", "HTTP 404 after retries")
    paths = [h.path for h in fixture_server.hits]
    assert paths[0] == "/robots.txt" and "/web/private/fact_sheet.html" not in paths


def test_wikipedia_extracts_curated_titles_and_rejects_missing_and_malformed_replies(scraper, fixture_server, tmp_path):
    titles = ["Amyotrophic lateral sclerosis", "SOD1", "No such article about ALS", "Lagged replica",
              "HTML error page", "Wrong encoding"]
    sources = write_sources(tmp_path / "sources.yaml", fixture_server.base_url, titles)
    ok(scraper.run("wikipedia", ALS_SCRAPE__WEB__SOURCES_FILE=str(sources),
                   ALS_SCRAPE__WIKIPEDIA__REQUESTS_PER_SECOND="10"))
    docs, rejected, _ = scraper.published("wikipedia")
    assert [d["id"] for d in docs] == ["wikipedia-4384", "wikipedia-2064213"]
    assert docs[0]["license"] == "CC-BY-SA-4.0" and "REFERENCES-MARKER" not in docs[0]["text"]
    assert {r["key"]: r["kind"] for r in rejected} == {
        "No such article about ALS": "missing", "Lagged replica": "malformed",
        "HTML error page": "malformed", "Wrong encoding": "malformed"}
    api = fixture_server.requests("/w/api.php")
    assert all(h.query["maxlag"] == ["5"] and h.query["explaintext"] == ["1"] for h in api)
    assert "/robots.txt" not in [h.path for h in fixture_server.hits]  # an API, governed by its etiquette


def test_max_docs_stops_the_crawl_and_caps_the_published_documents(scraper, fixture_server):
    fixture_server.pmc_ids = [str(30000000 + i) for i in range(40)]
    result = scraper.run("pmc", "--max-docs", "5", **PMC_SMALL, ALS_NCBI_API_KEY="k",
                         ALS_SCRAPE__PMC__PRIORITY_FILTER="")
    ok(result)
    docs, _, _ = scraper.published("pmc")
    assert len(docs) == 5
    assert len(fixture_server.requests("/eutils/efetch.fcgi")) < 20  # it stopped, it did not fetch everything
    again = scraper.run("pmc", "--max-docs", "5", **PMC_SMALL, ALS_NCBI_API_KEY="k",
                        ALS_SCRAPE__PMC__PRIORITY_FILTER="")
    ok(again)
    assert "skipped (unchanged)" in again.stdout
