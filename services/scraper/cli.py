"""``als-lm scrape <spider>``: crawl one source (resumable), or publish the bundled sample.

Publishes run ``scrape-<spider>`` with ``docs/part-NNNNN.jsonl``, ``rejected.jsonl`` and counts.
An interrupted crawl keeps its state under the job directory; the same command resumes it.
"""

from __future__ import annotations

import logging

import click

from services.scraper.publish import publish
from services.scraper.sample import read_sample, sample_files
from services.scraper.settings import ScraperSettings
from shared.manifest import InputRef, Manifest
from shared.runs import fingerprint, run_stage
from shared.settings import load
from shared.stages import fingerprint_settings
from shared.store import ArtifactStore, open_store, sha256_file

log = logging.getLogger(__name__)

CRAWLERS = ("pmc", "clinicaltrials", "web", "wikipedia")


def bundled(path) -> InputRef:
    return InputRef(key=f"bundled/{path.name}", sha256=sha256_file(path), run="bundled")


def publish_sample(store: ArtifactStore, settings: ScraperSettings, force: bool) -> tuple[Manifest, bool]:
    files = sample_files(settings.scrape.sample_dir)
    docs = read_sample(files)  # validated before anything is written

    def body(writer, scratch):
        publish(writer, scratch, docs, [], shard_documents=settings.scrape.shard_documents)

    return run_stage(store, "scrape-sample", fingerprint_settings("scrape-sample", settings),
                     [bundled(f) for f in files], body, work_dir=settings.work_dir, force=force)


def publish_crawl(store: ArtifactStore, settings: ScraperSettings, spider: str, force: bool) -> tuple[Manifest, bool]:
    from services.scraper.crawl import crawl  # Scrapy and its reactor load only for a crawl
    from services.scraper.jobstore import JobStore

    cfg = settings.scrape
    stage = f"scrape-{spider}"
    run_settings = fingerprint_settings(stage, settings)
    inputs = [bundled(cfg.web.sources_file)] if spider in ("web", "wikipedia") else []
    job_holder: list[JobStore] = []

    def body(writer, scratch):
        job = JobStore(settings.job_dir(spider), fingerprint(stage, run_settings, inputs))
        job_holder.append(job)
        outcome = crawl(spider, cfg, job, settings.log_level)
        if outcome.reason == "shutdown":
            log.warning("%s: stopped with %d documents kept in %s; run the same command to resume",
                        stage, job.documents, job.dir)
            raise KeyboardInterrupt
        if outcome.reason not in ("finished", "max_documents"):
            raise click.ClickException(
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


@click.command()
@click.argument("spider", type=click.Choice([*CRAWLERS, "sample"]))
@click.option("--max-docs", type=click.IntRange(min=1), default=None,
              help="Stop after this many documents (overrides ALS_SCRAPE__MAX_DOCUMENTS).")
@click.option("--force", is_flag=True, help="Run even when an identical run is already published.")
def scrape(spider: str, max_docs: int | None, force: bool) -> None:
    """Collect raw documents and publish them as run scrape-SPIDER.

    pmc, clinicaltrials, web and wikipedia crawl their source politely (robots.txt where it
    applies, rate limits, retries) and resume where they stopped; sample publishes the bundled
    sample corpus.
    """
    settings = load(ScraperSettings)
    if max_docs is not None:
        settings.scrape = settings.scrape.model_copy(update={"max_documents": max_docs})
    store = open_store(settings.store)
    if spider == "sample":
        manifest, ran = publish_sample(store, settings, force)
    else:
        manifest, ran = publish_crawl(store, settings, spider, force)
    stage = f"scrape-{spider}"
    if ran:
        m = manifest.metrics
        click.echo(f"{stage}: published {manifest.run} ({m['documents']} documents, {m['rejected']} rejected)")
    else:
        click.echo(f"{stage}: skipped (unchanged), see {manifest.run}")
