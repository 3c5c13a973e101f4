"""The crawl's record log: idempotent by document id, repaired after a kill, reset when settings change."""

from __future__ import annotations

from datetime import date

from services.scraper.jobstore import JobStore
from shared.schemas.corpus import RawDocument


def doc(i: str) -> RawDocument:
    return RawDocument(id=i, source="pmc", url="u", title="t", text="text", date_accessed=date(2026, 1, 1),
                       license="CC-BY-4.0")


def test_a_document_id_is_written_once(tmp_path):
    job = JobStore(tmp_path, "f")
    assert job.append("PMC1", "u", [doc("a"), doc("b")], []) == 2
    assert job.append("PMC1-again", "u", [doc("b"), doc("c")], []) == 1
    assert [d.id for d in job.documents_iter()] == ["a", "b", "c"]


def test_a_record_cut_short_by_a_kill_is_dropped_and_fetched_again(tmp_path):
    job = JobStore(tmp_path, "f")
    job.append("PMC1", "u", [doc("a")], [])
    job.close()
    with (tmp_path / "records.jsonl").open("a") as f:
        f.write('{"key": "PMC2", "url": "u", "documents": [{"id": "b"')  # the kill landed mid-write
    reopened = JobStore(tmp_path, "f")
    assert reopened.done == {"PMC1"} and reopened.documents == 1
    reopened.append("PMC2", "u", [doc("b")], [])
    assert [d.id for d in reopened.documents_iter()] == ["a", "b"]


def test_scrapy_state_is_kept_only_after_a_clean_stop(tmp_path):
    job = JobStore(tmp_path, "f")
    (job.scrapy_dir() / "requests.queue").mkdir(parents=True)
    job.mark_clean()
    assert (JobStore(tmp_path, "f").scrapy_dir() / "requests.queue").exists()  # SIGINT: resume the queue
    assert not (JobStore(tmp_path, "f").scrapy_dir()).exists()  # no clean mark (SIGKILL): discard it


def test_other_settings_start_the_job_afresh(tmp_path):
    JobStore(tmp_path, "f").append("PMC1", "u", [doc("a")], [])
    assert JobStore(tmp_path, "g").documents == 0


def test_rejections_met_again_after_a_restart_are_listed_once(tmp_path):
    job = JobStore(tmp_path, "f")
    for _ in range(2):
        job.append("PMC9", "u", [], [{"kind": "licence", "reason": "licence CC-BY-ND-4.0 ..."}])
    assert list(job.rejected_iter()) == [
        {"key": "PMC9", "url": "u", "kind": "licence", "reason": "licence CC-BY-ND-4.0 ..."}]
