"""The ``scrape-<source>`` stages: crawl one source (resumable), or publish the bundled sample.

``settings.scrape.source`` says which; the run is ``scrape-<source>`` with ``docs/part-NNNNN.jsonl``,
``rejected.jsonl`` and counts. An interrupted crawl keeps its state under the job directory; the
same run resumes it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from services.scraper.publish import publish
from services.scraper.sample import read_sample, sample_files
from services.scraper.settings import ScraperSettings
from shared.errors import AlsError
from shared.manifest import InputRef, Manifest
from shared.runs import RunWriter, fingerprint, run_stage
from shared.stages import fingerprint_settings
from shared.store import ArtifactStore, sha256_file

log = logging.getLogger(__name__)


def run(store: ArtifactStore, settings: ScraperSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    if settings.scrape.source == "sample":
        return _publish_sample(store, settings, force)
    return _publish_crawl(store, settings, force)


def _bundled(path: Path) -> InputRef:
    return InputRef(key=f"bundled/{path.name}", sha256=sha256_file(path), run="bundled")


def _publish_sample(store: ArtifactStore, settings: ScraperSettings, force: bool) -> tuple[Manifest, bool]:
    files = sample_files(settings.scrape.sample_dir)
    docs = read_sample(files)  # validated before anything is written

    def body(writer: RunWriter, scratch: Path) -> None:
        publish(writer, scratch, docs, [], shard_documents=settings.scrape.shard_documents)

    return run_stage(store, "scrape-sample", fingerprint_settings("scrape-sample", settings),
                     [_bundled(f) for f in files], body, work_dir=settings.work_dir, force=force)


def _publish_crawl(store: ArtifactStore, settings: ScraperSettings, force: bool) -> tuple[Manifest, bool]:
    from services.scraper.crawl import crawl  # Scrapy and its reactor load only for a crawl
    from services.scraper.jobstore import JobStore

    cfg = settings.scrape
    spider = cfg.source
    stage = f"scrape-{spider}"
    run_settings = fingerprint_settings(stage, settings)
    inputs = [_bundled(cfg.web.sources_file)] if spider in ("web", "wikipedia") else []
    job_holder: list[JobStore] = []

    def body(writer: RunWriter, scratch: Path) -> None:
        job = JobStore(settings.job_dir(spider), fingerprint(stage, run_settings, inputs))
        job_holder.append(job)
        outcome = crawl(spider, cfg, job, settings.log_level)
        if outcome.reason == "shutdown":
            log.warning("%s: stopped with %d documents kept in %s; run the same command to resume",
                        stage, job.documents, job.dir)
            raise KeyboardInterrupt
        if outcome.reason not in ("finished", "max_documents"):
            raise AlsError(
                f"the {spider} crawl ended early ({outcome.reason}); its state is kept in {job.dir}, rerun to resume"
            )
        publish(writer, scratch, job.documents_iter(), job.rejected_iter(),
                shard_documents=cfg.shard_documents, max_documents=cfg.max_documents)
        writer.metrics["crawl"] = outcome.stats

    try:
        manifest, ran = run_stage(store, stage, run_settings, inputs, body, work_dir=settings.work_dir, force=force)
    finally:
        for job in job_holder:
            job.close()
    if ran:
        job_holder[0].remove()  # published: the next crawl starts afresh
    return manifest, ran
