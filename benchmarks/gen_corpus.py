"""Scale the bundled sample corpus to a realistic raw input of any size (default ~100 MB).

Each generated document is written like a document of its category: paragraphs built from the
category's own sentences, drawn at random from the whole sample and given fresh numbers, so two
documents rarely share a paragraph and the near-duplicate detector has real work to do. On top of
that, what processing must remove is planted at known rates and counted in ``planted.json``:

- near-duplicates: an earlier document re-issued with ~1 % of its words changed (Jaccard ~0.9);
- exact duplicate paragraphs: shared disclaimers, and paragraphs copied from earlier documents;
- volatile sentences: phone numbers, opening hours, prices, "as of <date>", "last updated";
- markup: educational pages as full HTML with navigation and footer; inline tags elsewhere;
- short documents (under 100 words).

    python benchmarks/gen_corpus.py --size-mb 100 --out volumes/bench/raw
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import click

SAMPLE = Path(__file__).resolve().parents[1] / "services" / "scraper" / "sample"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
SHARD_BYTES = 16 * 1024 * 1024

DISCLAIMERS = [
    ("This information is provided for educational purposes only and is not a substitute for professional "
     "medical advice. Always seek the advice of your neurologist with any questions about a medical condition."),
    ("Participation in a clinical trial is voluntary. Talk with your care team about whether a study is right "
     "for you, and read the informed consent document carefully before you decide."),
    ("The views expressed in this story are those of the author and do not necessarily reflect the views of "
     "the organisation that published it."),
]
VOLATILE = [
    "Call our helpline at 1-800-{a}-{b} to speak with a care coordinator.",
    "Office hours: Monday to Friday, {h} a.m. to 5 p.m.",
    "As of {month} {year}, the study was still enrolling participants at {n} sites.",
    "Currently, the clinic sees about {n} new patients each month.",
    "The home evaluation kit costs ${n}.99 including shipping.",
    "Contact us at info{n}@example.org for a printed brochure.",
    "Last updated: {month} {d}, {year}",
]
MONTHS = ["January", "March", "May", "July", "September", "November"]


def load_sample() -> dict[str, list[dict]]:
    by_category: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(SAMPLE.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                doc = json.loads(line)
                by_category[doc["metadata"]["category"]].append(doc)
    return by_category


def sentence_pools(by_category: dict[str, list[dict]]) -> dict[str, list[str]]:
    return {
        cat: [s for d in docs for p in d["text"].split("\n\n") for s in SENTENCE_END.split(p) if len(s) > 30]
        for cat, docs in by_category.items()
    }


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.sample = load_sample()
        self.pools = sentence_pools(self.sample)
        self.weights = {c: sum(len(d["text"]) for d in docs) for c, docs in self.sample.items()}
        # Earlier documents and their plain paragraphs, for near-duplicates and copied paragraphs.
        self.recent: list[tuple[dict, list[str]]] = []
        self.planted: Counter[str] = Counter()

    def renumber(self, sentence: str) -> str:
        return NUMBER.sub(lambda m: str(self.rng.randint(1, 999)) if "." not in m.group(0)
                          else f"{self.rng.uniform(0.1, 99):.1f}", sentence)

    def paragraph(self, category: str) -> str:
        return " ".join(self.renumber(self.rng.choice(self.pools[category]))
                        for _ in range(self.rng.randint(2, 6)))

    def volatile(self) -> str:
        self.planted["volatile_sentences"] += 1
        r = self.rng
        return r.choice(VOLATILE).format(a=r.randint(200, 999), b=r.randint(1000, 9999), h=r.randint(7, 10),
                                         month=r.choice(MONTHS), year=r.randint(2019, 2025), d=r.randint(1, 28),
                                         n=r.randint(2, 400))

    def near_duplicate(self, original: dict, n: int) -> dict:
        words = original["text"].split(" ")
        for _ in range(max(1, len(words) // 100)):
            i = self.rng.randrange(len(words))
            words[i] = self.rng.choice(("rapidly", "notably", "clinically", "also", "further", "often"))
        self.planted["near_duplicates"] += 1
        return {**original, "id": f"{original['id']}-reissue-{n}", "text": " ".join(words),
                "url": original["url"] + "?v=2"}

    def document(self, n: int) -> dict:
        r = self.rng
        if self.recent and r.random() < 0.05:
            return self.near_duplicate(r.choice(self.recent)[0], n)
        category = r.choices(list(self.weights), weights=list(self.weights.values()))[0]
        template = r.choice(self.sample[category])
        if r.random() < 0.02:
            self.planted["short_documents"] += 1
            paragraphs = [self.paragraph(category)[:300]]
        else:
            paragraphs = [self.paragraph(category) for _ in range(r.randint(4, 14))]
        if self.recent and r.random() < 0.08:
            donor = r.choice(self.recent)[1]
            paragraphs.insert(r.randrange(len(paragraphs) + 1), r.choice(donor))
            self.planted["copied_paragraphs"] += 1
        if r.random() < 0.2:
            paragraphs.append(r.choice(DISCLAIMERS))
            self.planted["disclaimer_paragraphs"] += 1
        if r.random() < 0.15:
            i = r.randrange(len(paragraphs))
            paragraphs[i] = f"{paragraphs[i]} {self.volatile()}"
        text = "\n\n".join(paragraphs)
        if category == "educational" and r.random() < 0.3:
            text = html_page(template["title"], paragraphs)
            self.planted["html_pages"] += 1
        elif r.random() < 0.05:
            text = re.sub(r"\b(SOD1|C9orf72|TDP-43|FUS)\b", r"<i>\1</i>", text)
            self.planted["inline_markup"] += 1
        doc = {
            "id": f"gen-{category}-{n:07d}",
            "source": template["source"],
            "url": f"https://als-lm.invalid/generated/{n}",
            "title": f"{template['title']} ({n})",
            "text": text,
            "date_accessed": template["date_accessed"],
            "license": template["license"],
            "metadata": {**template["metadata"], "generated": True},
        }
        self.recent.append((doc, paragraphs))
        if len(self.recent) > 2000:
            self.recent.pop(self.rng.randrange(len(self.recent)))
        return doc


def html_page(title: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!DOCTYPE html><html><head><title>{title}</title><script>window.dataLayer=[];</script></head>"
            f"<body><nav><a href='/'>Home</a> <a href='/donate'>Donate</a> <a href='/about'>About us</a></nav>"
            f"<main><article><h1>{title}</h1>{body}</article></main>"
            f"<footer>Copyright Example ALS Foundation. All rights reserved.</footer></body></html>")


@click.command()
@click.option("--size-mb", type=float, default=100.0, show_default=True, help="Approximate output size.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory for part-NNNNN.jsonl.")
@click.option("--seed", type=int, default=1, show_default=True)
def main(size_mb: float, out: Path, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.jsonl"):
        old.unlink()
    gen = Generator(seed)
    target, written, n, shards = int(size_mb * 1024 * 1024), 0, 0, 0
    while written < target:
        with open(out / f"part-{shards:05d}.jsonl", "w", encoding="utf-8") as shard:
            while written < target and shard.tell() < SHARD_BYTES:
                line = json.dumps(gen.document(n), ensure_ascii=False) + "\n"
                shard.write(line)
                written += len(line.encode())
                n += 1
        shards += 1
    planted = {"documents": n, "bytes": written, **gen.planted}
    (out / "planted.json").write_text(json.dumps(planted, indent=2) + "\n")
    click.echo(json.dumps(planted))


if __name__ == "__main__":
    main()
