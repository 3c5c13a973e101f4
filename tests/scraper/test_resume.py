"""A crawl stopped at any point and started again ends with every document exactly once."""

from __future__ import annotations

import signal
import time

import pytest

from shared import runs

pytestmark = pytest.mark.slow

IDS = [str(40000000 + i) for i in range(30)]
ENV = {"ALS_SCRAPE__PMC__QUERIES": '["ALS"]', "ALS_SCRAPE__PMC__SEARCH_BATCH": "5",
       "ALS_SCRAPE__PMC__FETCH_BATCH": "2", "ALS_SCRAPE__PMC__PRIORITY_FILTER": "", "ALS_NCBI_API_KEY": "k"}
EXPECTED = {f"pmc-PMC{i}-{part}" for i in IDS for part in ("abstract", "body")}


def stop_midway(scraper, sig: int, records: int = 6) -> tuple[int, set[str]]:
    """Start a crawl, send ``sig`` once ``records`` articles are stored; return its exit code and their ids."""
    log = scraper.root / "work" / "scrape-jobs" / "pmc" / "records.jsonl"
    proc = scraper.start("pmc", **ENV)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("\n") >= records:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the crawl stored nothing within 60 s: " + proc.communicate()[1][-2000:])
    proc.send_signal(sig)
    _, _err = proc.communicate(timeout=60)
    stored = {line.split('"key": "', 1)[1].split('"', 1)[0] for line in log.read_text().splitlines()}
    assert len(stored) < len(IDS), "the crawl finished before it could be stopped"
    return proc.returncode, stored


def finish(scraper, fixture_server) -> tuple[list[str], set[str]]:
    before = len(fixture_server.hits)
    result = scraper.run("pmc", **ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    docs, rejected, _ = scraper.published("pmc")
    fetched = {f"PMC{i}" for h in fixture_server.hits[before:] if h.path == "/eutils/efetch.fcgi"
               for i in h.query["id"][0].split(",")}
    assert rejected == []
    return [d["id"] for d in docs], fetched


def test_resume_after_sigkill_loses_no_documents_and_duplicates_none(scraper, fixture_server):
    fixture_server.pmc_ids = IDS
    code, stored = stop_midway(scraper, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert runs.runs(scraper.store, "scrape-pmc") == []  # nothing half-published
    ids, fetched = finish(scraper, fixture_server)
    assert len(ids) == len(set(ids)) and set(ids) == EXPECTED
    assert not fetched & stored  # what was stored before the kill is not fetched again
    assert not (scraper.root / "work" / "scrape-jobs" / "pmc").exists()  # published: the job is done


def test_resume_after_sigint_continues_from_the_saved_queue(scraper, fixture_server):
    fixture_server.pmc_ids = IDS
    code, stored = stop_midway(scraper, signal.SIGINT)
    job = scraper.root / "work" / "scrape-jobs" / "pmc"
    assert code == 130
    assert (job / "scrapy.clean").exists() and (job / "scrapy" / "requests.queue").is_dir()
    ids, fetched = finish(scraper, fixture_server)
    assert len(ids) == len(set(ids)) and set(ids) == EXPECTED
    assert not fetched & stored
