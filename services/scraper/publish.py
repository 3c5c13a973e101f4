"""Write a scrape run's outputs: ``docs/part-NNNNN.jsonl`` shards, ``rejected.jsonl`` and counts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from itertools import islice
from pathlib import Path

from shared.errors import InvalidInput
from shared.runs import RunWriter
from shared.schemas.corpus import RawDocument


def publish(
    writer: RunWriter,
    scratch: Path,
    documents: Iterable[RawDocument],
    rejected: Iterable[dict],
    *,
    shard_documents: int,
    max_documents: int | None = None,
) -> None:
    docs_dir = scratch / "docs"
    docs_dir.mkdir(parents=True, exist_ok=True)
    by_category: Counter[str] = Counter()
    text_bytes = shard = 0
    documents = iter(documents if max_documents is None else islice(documents, max_documents))
    while batch := list(islice(documents, shard_documents)):
        path = docs_dir / f"part-{shard:05d}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for doc in batch:
                f.write(doc.model_dump_json() + "\n")
                by_category[doc.category] += 1
                text_bytes += len(doc.text.encode())
        writer.put_file(f"docs/{path.name}", path)
        shard += 1
    if shard == 0:
        raise InvalidInput("the crawl produced no documents; nothing is published (see the rejected records above)")

    kinds: Counter[str] = Counter()
    rejected_path = scratch / "rejected.jsonl"
    with rejected_path.open("w", encoding="utf-8") as f:
        for entry in rejected:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            kinds[entry["kind"]] += 1
    writer.put_file("rejected.jsonl", rejected_path)
    writer.metrics.update(
        documents=sum(by_category.values()),
        documents_by_category=dict(sorted(by_category.items())),
        text_bytes=text_bytes,
        shards=shard,
        rejected=sum(kinds.values()),
        rejected_by_kind=dict(sorted(kinds.items())),
    )
