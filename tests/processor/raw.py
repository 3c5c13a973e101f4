"""Raw documents and scrape runs for the processor tests, published the way a scraper does."""

from __future__ import annotations

import json
from pathlib import Path

from shared import runs
from shared.manifest import Manifest
from shared.store import ArtifactStore

SAMPLE = Path(__file__).resolve().parents[2] / "services" / "scraper" / "sample"


def raw_line(doc_id: str, text: str, category: str = "research") -> bytes:
    return json.dumps({
        "id": doc_id, "source": "test", "url": f"https://example.invalid/{doc_id}", "title": doc_id,
        "text": text, "date_accessed": "2026-01-01", "license": "CC-BY-4.0", "metadata": {"category": category},
    }).encode()


def publish_scrape(store: ArtifactStore, work: Path, lines: list[bytes], stage: str = "scrape-test") -> Manifest:
    def body(writer, scratch):
        writer.put_bytes("docs/part-00000.jsonl", b"\n".join(lines) + b"\n")
        writer.put_bytes("rejected.jsonl", b"")
        writer.metrics["documents"] = len(lines)

    manifest, _ = runs.run_stage(store, stage, {"lines": len(lines)}, [], body, work_dir=work / "scrape-work")
    return manifest


def sample_lines() -> list[bytes]:
    return [line for path in sorted(SAMPLE.glob("*.jsonl")) for line in path.read_bytes().splitlines() if line]
