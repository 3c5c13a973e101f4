"""A local HTTP server that replays made-up and real responses of PMC, CT.gov, MediaWiki and web pages.

Every request is logged with its arrival time, so tests can check rates, retries and robots.txt.
Spiders run end to end as ``python -m als_lm scrape <spider>`` subprocesses (Twisted's reactor
runs once per process), with settings from the environment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from shared import runs
from shared.store import LocalStore

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]

FIXTURE_IDS = ["10000001", "10000002", "10000003", "10000004", "10000005"]
REVIEW_IDS = ["10000001", "10000005"]
PAGE_TOKENS = {None: "studies_page1.json", "NF0g5JGBlPMuwQY": "studies_page2.json"}
WIKI = {
    "Amyotrophic lateral sclerosis": "amyotrophic_lateral_sclerosis.json",
    "SOD1": "sod1.json",
    "No such article about ALS": "missing.json",
    "Lagged replica": "maxlag.json",
}


@dataclass
class Hit:
    t: float
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


REAL = FIXTURES / "real"
# Real articles (tests/scraper/fixtures/real/SOURCES.md): PMC OA files, and real efetch db=pmc replies.
REAL_EFETCH_FILES = sorted((REAL / "eutils").glob("efetch_pmc*.xml"))
REAL_ARTICLE_FILES = [*sorted((REAL / "pmc").glob("*.nxml")), *REAL_EFETCH_FILES]
REAL_PAGES = sorted((REAL / "web").glob("*.html"))
# Real ClinicalTrials.gov API v2 replies: one real /studies page whose nextPageToken leads to a page
# made of real single-study replies (GET /studies/{nctId}), each exactly as in its file.
REAL_CTGOV_FIRST = REAL / "ctgov" / "studies_page_central-data.json"
REAL_CTGOV_NEXT = json.loads(REAL_CTGOV_FIRST.read_text())["nextPageToken"]
REAL_CTGOV_STUDIES = sorted((REAL / "ctgov").glob("NCT*.json"))
# Real MediaWiki prop=extracts replies by the title the spider asks for.
REAL_WIKI = {
    "Python (programming language)": REAL / "wikipedia" / "python_programming_language.json",
    "Douglas Adams": REAL / "wikipedia" / "douglas_adams_wptools.json",
}
# A real reply that holds back the rest of its result in "continue" (prop=images, same page as the
# Python extract): served first for these titles, then the extract when the spider continues.
REAL_WIKI_CONTINUE = REAL / "wikipedia" / "python_programming_language_images.json"
CONTINUED_TITLES = {"Python (programming language)", "Endless continuation"}


def _articles_in(text: str) -> dict[str, str]:
    found = {}
    for article in re.findall(r"<article[ >].*?</article>", text, flags=re.DOTALL):
        number = re.search(r'pub-id-type="pmc(?:id)?">(?:PMC)?(\d+)<', article).group(1)
        found[number] = article
    return found


def _articles() -> dict[str, str]:
    """The <article> elements of the made-up and the real fixtures by PMC number, each one's text
    exactly as in its file (served inside an efetch envelope, as efetch sends several at once)."""
    found = _articles_in((FIXTURES / "pmc" / "efetch.xml").read_text(encoding="utf-8"))
    for path in REAL_ARTICLE_FILES:
        found.update(_articles_in(path.read_text(encoding="utf-8")))
    return found


REAL_PMC_IDS = sorted(n for path in REAL_ARTICLE_FILES for n in _articles_in(path.read_text(encoding="utf-8")))


@dataclass
class FixtureServer:
    pmc_ids: list[str] = field(default_factory=lambda: list(FIXTURE_IDS))
    review_ids: list[str] = field(default_factory=lambda: list(REVIEW_IDS))
    truncate_ids: set[str] = field(default_factory=set)
    utf16_ids: set[str] = field(default_factory=set)
    real_ctgov: bool = False
    continued_wiki: bool = False
    flaky_left: int = 0
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self):
        self.articles = _articles()
        self.lock = threading.Lock()

    def requests(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    # -- routes: each returns (status, content type, body, extra headers) --------------------------

    def esearch(self, q):
        term = q["term"][0]
        if "HTML-ERROR" in term:
            return 200, "text/html; charset=utf-8", (FIXTURES / "web" / "not_found.html").read_bytes(), {}
        if "BAD-JSON" in term:
            return 200, "application/json; charset=UTF-8", b'{"header":{"type":"esearch"},"esearchresult":{"count":"3",', {}
        if "NCBI-ERROR" in term:
            return 200, "application/json; charset=UTF-8", (FIXTURES / "pmc" / "esearch_error.json").read_bytes(), {}
        if "FLAKY" in term:
            with self.lock:
                self.flaky_left -= 1
                if self.flaky_left >= 0:
                    return 503, "text/plain", b"Service Temporarily Unavailable", {"Retry-After": "1"}
        ids = self.review_ids if "review[pt]" in term else self.pmc_ids
        start, size = int(q["retstart"][0]), int(q["retmax"][0])
        envelope = json.loads((FIXTURES / "pmc" / "esearch.json").read_text())
        envelope["esearchresult"].update(
            count=str(len(ids)), retstart=str(start), retmax=str(len(ids[start:start + size])),
            idlist=ids[start:start + size], querytranslation=term,
        )
        return 200, "application/json; charset=UTF-8", json.dumps(envelope).encode(), {}

    def efetch(self, q):
        ids = q["id"][0].split(",")
        parts = [self.articles.get(i) or self.articles["10000001"].replace("10000001", i) for i in ids]
        body = (
            '<?xml version="1.0" ?>\n<!DOCTYPE pmc-articleset PUBLIC "-//NLM//DTD ARTICLE SET 2.0//EN" '
            '"https://dtd.nlm.nih.gov/ncbi/pmc/articleset/nlm-articleset-2.0.dtd">\n<pmc-articleset>'
            + "".join(parts) + "</pmc-articleset>\n"
        ).encode()
        if self.truncate_ids & set(ids):
            body = body[: len(body) // 2]
        if self.utf16_ids & set(ids):  # the same reply re-encoded: a proxy or mirror gone wrong
            body = body.decode("utf-8").encode("utf-16")
        return 200, "text/xml; charset=UTF-8", body, {}

    def real_studies(self, token):
        if token is None:
            return 200, "application/json", REAL_CTGOV_FIRST.read_bytes(), {}
        if token == REAL_CTGOV_NEXT:  # the last page: no nextPageToken
            body = b'{"studies":[' + b",".join(p.read_bytes() for p in REAL_CTGOV_STUDIES) + b"]}"
            return 200, "application/json", body, {}
        return 400, "application/json", b'{"message":"invalid pageToken"}', {}

    def studies(self, q):
        token = q.get("pageToken", [None])[0]
        if self.real_ctgov:
            return self.real_studies(token)
        if token in PAGE_TOKENS:
            return 200, "application/json", (FIXTURES / "ctgov" / PAGE_TOKENS[token]).read_bytes(), {}
        if token == "NF0g5JGBlPMuwQZ":  # the last page arrives cut short
            return 200, "application/json", b'{"studies":[{"protocolSection":{"identificationModule":{"nctId":"NCT0', {}
        return 400, "application/json", b'{"message":"invalid pageToken"}', {}

    def mediawiki(self, q):
        title = q["titles"][0]
        if title == "HTML error page":
            return 200, "text/html; charset=utf-8", (FIXTURES / "web" / "not_found.html").read_bytes(), {}
        if title == "Wrong encoding":
            body = (FIXTURES / "wikipedia" / "sod1.json").read_text().replace("hSOD1", "hSOD1 (dismutase à cuivre)")
            return 200, "application/json; charset=utf-8", body.encode("latin-1"), {}
        # "Endless continuation" answers every continued request with the same partial reply.
        if self.continued_wiki and title in CONTINUED_TITLES and ("imcontinue" not in q or title == "Endless continuation"):
            return 200, "application/json; charset=utf-8", REAL_WIKI_CONTINUE.read_bytes(), {}
        if title in REAL_WIKI:
            return 200, "application/json; charset=utf-8", REAL_WIKI[title].read_bytes(), {}
        if title in WIKI:
            return 200, "application/json; charset=utf-8", (FIXTURES / "wikipedia" / WIKI[title]).read_bytes(), {}
        return 200, "application/json; charset=utf-8", (FIXTURES / "wikipedia" / "missing.json").read_bytes(), {}

    def route(self, path: str, q):
        if path == "/robots.txt":
            return 200, "text/plain", (FIXTURES / "web" / "robots.txt").read_bytes(), {}
        if path == "/eutils/esearch.fcgi":
            return self.esearch(q)
        if path == "/eutils/efetch.fcgi":
            return self.efetch(q)
        if path == "/ctgov/studies":
            return self.studies(q)
        if path == "/w/api.php":
            return self.mediawiki(q)
        name = path.rsplit("/", 1)[-1]
        if path.startswith("/web/") and (FIXTURES / "web" / name).is_file():
            return 200, "text/html; charset=utf-8", (FIXTURES / "web" / name).read_bytes(), {}
        if path.startswith("/real/web/") and (REAL / "web" / name).is_file():
            return 200, "text/html; charset=utf-8", (REAL / "web" / name).read_bytes(), {}
        if path.startswith("/real/latin1/") and (REAL / "web" / name).is_file():
            # A real page re-encoded to Latin-1 while its header and meta still say UTF-8.
            body = (REAL / "web" / name).read_text(encoding="utf-8").encode("latin-1", "replace")
            return 200, "text/html; charset=utf-8", body, {}
        if path.startswith("/real/truncated/") and (REAL / "web" / name).is_file():
            body = (REAL / "web" / name).read_bytes()
            return 200, "text/html; charset=utf-8", body[:1500], {}
        return 404, "text/html", b"<html><body><h1>404 Not Found</h1></body></html>", {}


@contextmanager
def serving(state: FixtureServer):
    """Serve ``state``'s routes on 127.0.0.1 until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            with state.lock:
                state.hits.append(Hit(time.monotonic(), parts.path, query, dict(self.headers)))
            status, ctype, body, extra = state.route(parts.path, query)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fixture_server():
    with serving(FixtureServer()) as state:
        yield state


@dataclass
class Scraper:
    """Runs ``als-lm scrape`` in a subprocess against the fixture server, with a local store."""

    root: Path
    base_url: str
    pycache: Path
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALS_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(
            # Each crawl is a fresh interpreter; a shared bytecode cache saves recompiling Scrapy every time.
            PYTHONPYCACHEPREFIX=str(self.pycache),
            ALS_STORE__ROOT=str(self.root / "artifacts"),
            ALS_WORK_DIR=str(self.root / "work"),
            ALS_SCRAPE__PMC__EUTILS_URL=f"{self.base_url}/eutils",
            ALS_SCRAPE__CLINICALTRIALS__API_URL=f"{self.base_url}/ctgov",
            ALS_SCRAPE__WIKIPEDIA__API_URL=f"{self.base_url}/w/api.php",
            ALS_SCRAPE__BACKOFF_BASE="0.2",
            PYTHONPATH=str(REPO),
        )
        env.update(self.env)
        env.update(extra)
        return env

    def command(self, spider: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "als_lm", "-q", "scrape", spider, *args]

    def run(self, spider: str, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(spider, *args), cwd=self.root, env=self.environment(**extra),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, spider: str, *args: str, **extra: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(spider, *args), cwd=self.root, env=self.environment(**extra),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.root / "artifacts")

    def published(self, spider: str) -> tuple[list[dict], list[dict], dict]:
        """(documents, rejected, metrics) of the latest run of scrape-<spider>."""
        manifest = runs.latest(self.store, f"scrape-{spider}")
        docs = []
        for ref in manifest.outputs_under("docs/"):
            docs += [json.loads(line) for line in self.store.get_bytes(ref.key).decode().splitlines()]
        rejected = [json.loads(line) for line in
                    self.store.get_bytes(manifest.output("rejected.jsonl").key).decode().splitlines()]
        return docs, rejected, manifest.metrics


@pytest.fixture(scope="session")
def pycache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def scraper(tmp_path, fixture_server, pycache) -> Scraper:
    return Scraper(tmp_path, fixture_server.base_url, pycache)
