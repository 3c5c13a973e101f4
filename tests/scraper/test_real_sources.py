"""The real spiders on real responses (tests/scraper/fixtures/real/SOURCES.md), served on 127.0.0.1:
PMC articles from several publishers and one real efetch reply, real esearch replies, real
health-information pages, real ClinicalTrials.gov API v2 studies and MediaWiki extracts. Checked by properties, not exact strings: title and text present, no
markup, no citation residue, no back matter, licence recognised or the article rejected with its
reason, sections as processing expects them, non-ASCII text intact; and the processed corpus made
from them measured by the quality report."""

from __future__ import annotations

import html
import json
import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from services.processor.process import process_corpus
from services.processor.quality import CITATION_RESIDUE, MARKUP
from services.processor.residue import back_matter_label
from services.processor.settings import ProcessConfig
from services.processor.terms import load_terms
from services.scraper.parsing.eutils import parse_esearch
from services.scraper.parsing.jats import BACK_MATTER_TITLE, Article, article_documents, parse_articleset
from services.scraper.parsing.mediawiki import DROPPED_SECTIONS
from tests.scraper.conftest import (
    CONTINUED_TITLES,
    REAL,
    REAL_ARTICLE_FILES,
    REAL_CTGOV_FIRST,
    REAL_CTGOV_NEXT,
    REAL_CTGOV_STUDIES,
    REAL_EFETCH_FILES,
    REAL_PAGES,
    REAL_PMC_IDS,
    REAL_WIKI,
    FixtureServer,
    Scraper,
    serving,
)

pytestmark = pytest.mark.slow

PMC_ALL_REAL = {"ALS_SCRAPE__PMC__QUERIES": '["ALS"]', "ALS_SCRAPE__PMC__SEARCH_BATCH": "20",
                "ALS_SCRAPE__PMC__FETCH_BATCH": "3", "ALS_SCRAPE__PMC__PRIORITY_FILTER": "", "ALS_NCBI_API_KEY": "k"}
NON_ASCII_WORD = re.compile(r"[^\W\d_]*[^\x00-\x7f][^\W\d_]*")


def write_sources(path: Path, base_url: str, prefix: str, pages: list[Path]) -> Path:
    web = [{"url": f"{base_url}/{prefix}/{p.name}", "category": "educational", "publisher": p.name.split(".")[0],
            "license": "test fixture only (see SOURCES.md)"} for p in pages]
    path.write_text(yaml.safe_dump({"web": web, "wikipedia": []}))
    return path


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, pycache):
    """Both spiders once over every real fixture; their published documents and rejections."""
    root = tmp_path_factory.mktemp("real")
    state = FixtureServer(pmc_ids=list(REAL_PMC_IDS), review_ids=[])
    with serving(state) as server:
        scraper = Scraper(root, server.base_url, pycache)
        pmc = scraper.run("pmc", **PMC_ALL_REAL)
        assert pmc.returncode == 0, pmc.stderr[-3000:]
        sources = write_sources(root / "sources.yaml", server.base_url, "real/web", REAL_PAGES)
        web = scraper.run("web", ALS_SCRAPE__WEB__SOURCES_FILE=str(sources), ALS_SCRAPE__WEB__REQUESTS_PER_SECOND="10")
        assert web.returncode == 0, web.stderr[-3000:]
        out = {name: scraper.published(name) for name in ("pmc", "web")}
    return out


@pytest.fixture(scope="module")
def documents(crawled) -> list[dict]:
    return crawled["pmc"][0] + crawled["web"][0]


def source_text(path: Path) -> str:
    """A fixture's text as a reader sees it: tags gone (inline ones join letters: N<sub>e</sub>), entities resolved."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def test_every_real_article_becomes_documents_or_is_rejected_with_its_reason(crawled):
    docs, rejected, _ = crawled["pmc"]
    kept = {d["metadata"]["pmcid"] for d in docs}
    refused = {r["key"]: r for r in rejected}
    assert kept | set(refused) == {f"PMC{n}" for n in REAL_PMC_IDS} and not kept & set(refused)
    assert len(kept) >= 5
    publishers = {d["metadata"]["journal"] for d in docs}
    assert len(publishers) >= 5 and None not in publishers  # NLM 2.x files keep their journal title too
    for pmcid, r in refused.items():
        assert r["kind"] in ("licence", "notice") and r["reason"], (pmcid, r)
    # The British Journal of Cancer article states only a copyright; one real efetch reply is a
    # correction, the other an author manuscript under the publisher's text-mining terms.
    assert refused["PMC2994229"]["kind"] == "licence" and "unknown" in refused["PMC2994229"]["reason"]
    assert refused["PMC8435807"]["kind"] == "notice"
    assert refused["PMC3631456"]["kind"] == "licence" and "unknown" in refused["PMC3631456"]["reason"]


def test_each_kept_article_has_a_title_an_abstract_a_body_and_a_recognised_licence(crawled):
    docs, _, _ = crawled["pmc"]
    by_article: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_article.setdefault(d["metadata"]["pmcid"], {})[d["metadata"]["part"]] = d
    for pmcid, parts in by_article.items():
        assert set(parts) == {"abstract", "body"}, pmcid
        assert all(len(p["title"]) > 10 for p in parts.values()), pmcid
        assert len(parts["abstract"]["text"]) > 300 and len(parts["body"]["text"]) > 3000, pmcid
        assert parts["body"]["license"] != "unknown" and parts["body"]["license"].startswith(("CC", "public")), pmcid


def test_real_pages_give_their_main_text(crawled):
    docs, rejected, _ = crawled["web"]
    assert not rejected
    assert len(docs) == len(REAL_PAGES) >= 6
    assert all(len(d["text"]) > 2000 and d["title"] for d in docs)


def test_no_markup_and_no_citation_residue(documents):
    for d in documents:
        assert not MARKUP.search(d["text"]), (d["id"], MARKUP.search(d["text"]))
        if d["source"] == "pmc":  # web pages are cleaned of bracket debris by the processor, not the spider
            found = CITATION_RESIDUE.search(d["text"])
            assert found is None, (d["id"], d["text"][max(0, found.start() - 60):found.end() + 20])


def test_saved_wikipedia_and_pmc_pages_lose_edit_links_reference_labels_and_boilerplate(crawled):
    by_page = {d["url"].rsplit("/", 1)[-1]: d["text"] for d in crawled["web"][0]}
    wiki, pmc = by_page["en.wikipedia.org.tsne.html"], by_page["pmc.ncbi.nlm.nih.gov.PMC3040717.html"]
    for text in by_page.values():
        assert "[edit]" not in text and "This section collects any data citations" not in text
        assert not re.search(r"\b(?:Google Scholar|PubMed|PMC free article|Crossref|Medline)\b|\[DOI\]", text)
    # the prose around them stays: the sections' headings and the article's own words
    assert "\nDetails\n" in wiki and "Kullback–Leibler divergence" in wiki
    assert "Genetic screening of the breast and ovarian cancer susceptibility gene BRCA1" in pmc
    assert "Miki Y, Swensen J" not in pmc  # the reference list is not the article


def test_a_separator_left_against_a_bracket_by_a_removed_link_or_citation_is_dropped(documents):
    texts = {d["metadata"]["pmcid"] + d["metadata"]["part"]: d["text"] for d in documents if d["source"] == "pmc"}
    for key, text in texts.items():
        found = re.search(r".{0,40}(?:[,;]\s*[)\]]|[(\[]\s*[,;]).{0,20}", text)
        assert found is None, (key, found.group())
    # "(2011; <URL>)", "(…, unpublished data; <citation>)", "SD/MLT; [<citations>])" in the sources
    assert "World Health Organization (2011), tuberculosis" in texts["PMC3460867body"]
    assert "Swanson P, unpublished data). This autoinduction" in texts["PMC2599765body"]
    assert "(CV, defined as SD/MLT)" in texts["PMC3166277body"]


def test_no_back_matter_in_articles(documents):
    for d in (d for d in documents if d["source"] == "pmc"):
        for paragraph in d["text"].split("\n\n"):
            assert not BACK_MATTER_TITLE.fullmatch(paragraph), (d["id"], paragraph)
            assert not back_matter_label(paragraph), (d["id"], paragraph[:80])


def test_sections_are_paragraphs_with_plain_headings(documents):
    for d in (d for d in documents if d["source"] == "pmc"):
        paragraphs = d["text"].split("\n\n")
        assert all(p and p == p.strip() and "\n\n" not in p for p in paragraphs), d["id"]
        headings = [p for p in paragraphs if len(p) < 80 and p[-1] not in ".?!"]
        assert headings or d["metadata"]["part"] == "abstract", d["id"]  # unstructured abstracts have none
        for h in headings:
            assert not h.endswith(":"), (d["id"], h)
            assert not re.match(r"\d+(\.\d+)*\.?\s", h), (d["id"], h)
            assert h != h.lower(), (d["id"], h)  # "introduction" -> "Introduction"; "pH-stat assays" stays


def test_non_ascii_text_survives_parsing(documents):
    sources = "".join(source_text(p) for p in [*REAL_ARTICLE_FILES, *REAL_PAGES])
    words = {w for d in documents for w in NON_ASCII_WORD.findall(d["text"] + d["title"])}
    assert len(words) > 50  # umlauts, Greek letters, typographic quotes and dashes
    missing = sorted(w for w in words if w not in sources)
    assert not missing, missing[:20]
    assert all("\ufffd" not in d["text"] for d in documents)


def test_real_efetch_replies_parse_whole_whatever_the_spider_then_keeps():
    """Every article of each real efetch reply parses (the rejections above are judgments, not
    parse failures), and the research manuscript's text has the properties a kept one must have."""
    assert len(REAL_EFETCH_FILES) >= 2
    for path in REAL_EFETCH_FILES:
        raw = path.read_bytes()
        articles = parse_articleset(raw)
        assert len(articles) == raw.count(b"<article ") >= 1, path.name
        assert all(isinstance(a, Article) and a.title for a in articles), path.name
    [manuscript] = parse_articleset((REAL / "eutils" / "efetch_pmc_manuscript.xml").read_bytes())
    assert manuscript.pmcid == "PMC3631456" and manuscript.pmid == "23525089" and manuscript.journal
    assert not manuscript.licence.allowed  # "Conditions of use" of the publisher, not an open licence
    docs = {d["metadata"]["part"]: d for d in article_documents(manuscript, date(2026, 1, 1))}
    assert len(docs["abstract"]["text"]) > 300 and len(docs["body"]["text"]) > 3000
    for d in docs.values():
        assert not MARKUP.search(d["text"]) and not CITATION_RESIDUE.search(d["text"]), d["id"]
        assert not any(back_matter_label(p) for p in d["text"].split("\n\n")), d["id"]
    paragraphs = docs["body"]["text"].split("\n\n")
    assert {"Results", "Discussion", "Materials and Methods"} <= set(paragraphs)
    assert "Supplementary Material" not in paragraphs
    # Genotype superscripts are prose, not citation leftovers: "Ripk2<sup>−/−</sup> mice".
    assert "Ripk2−/− mice" in docs["body"]["text"] and "IFN-γ" in docs["abstract"]["text"] + docs["body"]["text"]
    words = {w for d in docs.values() for w in NON_ASCII_WORD.findall(d["text"])}
    assert words <= set(NON_ASCII_WORD.findall(source_text(REAL / "eutils" / "efetch_pmc_manuscript.xml")))


def test_real_esearch_xml_replies_are_read_like_json_ones():
    pages = {p.name: parse_esearch(p.read_bytes()) for p in sorted((REAL / "eutils").glob("esearch*.xml"))}
    assert len(pages) >= 2
    for name, page in pages.items():
        raw = (REAL / "eutils" / name).read_text()
        assert page.count == int(re.search(r"<Count>(\d+)</Count>", raw).group(1))
        assert page.ids == re.findall(r"<Id>(\d+)</Id>", raw.split("</IdList>")[0])
        assert page.retstart == int(re.search(r"<RetStart>(\d+)</RetStart>", raw).group(1))
    with_history = [p for p in pages.values() if p.webenv]
    assert with_history and all(p.query_key for p in with_history)


def test_truncated_and_re_encoded_real_replies_are_rejected_and_the_rest_is_kept(scraper, fixture_server, tmp_path):
    fixture_server.pmc_ids = list(REAL_PMC_IDS)
    fixture_server.review_ids = []
    fixture_server.truncate_ids = {"3166277"}
    fixture_server.utf16_ids = {"3585041"}
    result = scraper.run("pmc", **{**PMC_ALL_REAL, "ALS_SCRAPE__PMC__FETCH_BATCH": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    docs, rejected, _ = scraper.published("pmc")
    reasons = {r["key"]: (r["kind"], r["reason"]) for r in rejected}
    assert reasons["PMC3166277"][0] == "malformed" and "truncated or invalid XML" in reasons["PMC3166277"][1]
    assert reasons["PMC3585041"][0] == "malformed" and "not valid UTF-8" in reasons["PMC3585041"][1]
    assert {d["metadata"]["pmcid"] for d in docs} >= {"PMC2329613", "PMC3460867", "PMC2599765"}

    pages = REAL_PAGES[:2]
    sources = tmp_path / "sources.yaml"
    web = [{"url": f"{fixture_server.base_url}/real/{kind}/{p.name}", "category": "educational",
            "publisher": kind, "license": "test fixture only"} for kind in ("latin1", "truncated", "web") for p in pages]
    sources.write_text(yaml.safe_dump({"web": web, "wikipedia": []}))
    result = scraper.run("web", ALS_SCRAPE__WEB__SOURCES_FILE=str(sources), ALS_SCRAPE__WEB__REQUESTS_PER_SECOND="10")
    assert result.returncode == 0, result.stderr[-3000:]
    docs, rejected, _ = scraper.published("web")
    assert len(docs) == 2
    kinds = {r["url"].split("/real/")[1].split("/")[0]: r for r in rejected}
    assert kinds["latin1"]["kind"] == "malformed" and "not valid utf-8" in kinds["latin1"]["reason"]
    assert kinds["truncated"]["kind"] == "malformed" and "characters" in kinds["truncated"]["reason"]


def test_an_unexpected_jats_variant_is_rejected_alone_and_its_batch_kept(scraper, fixture_server):
    """An article without front/article-meta, served in one reply with a good one."""
    good = "2329613"
    fixture_server.articles["99999999"] = (
        '<article article-type="research-article"><front><journal-meta/></front>'
        '<body><p>Text.</p></body></article>')
    fixture_server.pmc_ids, fixture_server.review_ids = [good, "99999999"], []
    result = scraper.run("pmc", **{**PMC_ALL_REAL, "ALS_SCRAPE__PMC__FETCH_BATCH": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    docs, rejected, _ = scraper.published("pmc")
    assert {d["metadata"]["pmcid"] for d in docs} == {f"PMC{good}"}
    [bad] = rejected
    assert bad["key"] == "PMC99999999" and bad["kind"] == "missing" and "without front/article-meta" in bad["reason"]


def test_processed_real_corpus_is_measured_and_meets_the_residual_goal(crawled, tmp_path):
    raw = tmp_path / "raw.jsonl"
    docs = crawled["pmc"][0] + crawled["web"][0]
    raw.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    summary = process_corpus([raw], tmp_path / "out", ProcessConfig(min_tokens=50), 1337, [t for _, t in load_terms()])
    quality = json.loads((tmp_path / "out" / "stats.json").read_text())["quality"]
    assert quality == summary["quality"]
    assert set(quality["by_source"]) == {"pmc", "web"}
    for source, q in quality["by_source"].items():
        assert len(q["snippets"]) == 5 and all(s["text"] for s in q["snippets"]), source
        assert q["chars"] > 10_000
    removed = quality["overall"]["chars_removed_by_rule"]
    assert removed.get("figure_refs", 0) > 0 and removed.get("urls", 0) > 0  # the rules did work on real text
    assert quality["overall"]["residual_per_10k_chars"] <= 1.0, quality["overall"]
    assert "## Corpus quality" in (tmp_path / "out" / "stats.md").read_text()


# -- ClinicalTrials.gov API v2 and MediaWiki prop=extracts (real replies) ---------------------------

# CT.gov text fields are CommonMark: its escapes and bold markers are markup there too.
CTGOV_MARKUP = re.compile(MARKUP.pattern + r"|\\[!-/:-@\[-`{-~]|\*\*", re.MULTILINE)
CTGOV_READ = ("identificationModule", "descriptionModule", "conditionsModule", "designModule", "eligibilityModule",
              "armsInterventionsModule", "outcomesModule")
CTGOV_IDENTIFIERS = {"orgStudyIdInfo", "secondaryIdInfos", "organization", "nctIdAliases"}  # codes, not prose


def strings_in(value, skip: frozenset[str] | set[str] = frozenset()) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k not in skip for s in strings_in(v, skip)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v, skip)]
    return []


def real_studies() -> dict[str, dict]:
    """Every real study served, by NCT id: the /studies page's and the single-study replies'."""
    studies = json.loads(REAL_CTGOV_FIRST.read_text())["studies"] + [json.loads(p.read_text()) for p in REAL_CTGOV_STUDIES]
    return {s["protocolSection"]["identificationModule"]["nctId"]: s for s in studies}


def wiki_page(path: Path) -> dict:
    pages = json.loads(path.read_text(encoding="utf-8"))["query"]["pages"]
    return pages[0] if isinstance(pages, list) else next(iter(pages.values()))


@pytest.fixture(scope="module")
def crawled_apis(tmp_path_factory, pycache):
    """The clinicaltrials and wikipedia spiders once over the real API replies; what they published,
    and the requests the CT.gov spider made."""
    root = tmp_path_factory.mktemp("real-apis")
    state = FixtureServer(real_ctgov=True)
    with serving(state) as server:
        scraper = Scraper(root, server.base_url, pycache)
        ct = scraper.run("clinicaltrials", ALS_SCRAPE__CLINICALTRIALS__REQUESTS_PER_SECOND="10")
        assert ct.returncode == 0, ct.stderr[-3000:]
        sources = root / "sources.yaml"
        sources.write_text(yaml.safe_dump({"web": [], "wikipedia": list(REAL_WIKI)}))
        wiki = scraper.run("wikipedia", ALS_SCRAPE__WEB__SOURCES_FILE=str(sources),
                           ALS_SCRAPE__WIKIPEDIA__REQUESTS_PER_SECOND="10")
        assert wiki.returncode == 0, wiki.stderr[-3000:]
        out = {name: scraper.published(name) for name in ("clinicaltrials", "wikipedia")}
        out["ctgov_tokens"] = [h.query.get("pageToken") for h in state.requests("/ctgov/studies")]
    return out


def test_clinicaltrials_follows_the_real_next_page_token_to_every_real_study(crawled_apis):
    docs, rejected, _ = crawled_apis["clinicaltrials"]
    assert crawled_apis["ctgov_tokens"] == [None, [REAL_CTGOV_NEXT]]
    assert sorted(d["metadata"]["nct_id"] for d in docs) == sorted(real_studies()) and not rejected


def test_real_studies_keep_title_prose_and_results_as_the_spider_intends(crawled_apis):
    studies = real_studies()
    statuses = set()
    for doc in crawled_apis["clinicaltrials"][0]:
        study = studies[doc["metadata"]["nct_id"]]
        p = study["protocolSection"]
        statuses.add(p.get("statusModule", {}).get("overallStatus"))
        assert doc["title"] == p["identificationModule"]["briefTitle"] and doc["text"].startswith(doc["title"])
        assert ("Brief summary" in doc["text"]) == bool(p.get("descriptionModule", {}).get("briefSummary"))
        assert doc["metadata"]["has_results"] == bool(study.get("hasResults"))
        measures = study.get("resultsSection", {}).get("outcomeMeasuresModule", {}).get("outcomeMeasures", [])
        assert ("Results summary" in doc["text"]) == bool(measures)
    # A withdrawn study is kept for its protocol prose (status is not a filter); two carry results.
    assert "WITHDRAWN" in statuses and sum(d["metadata"]["has_results"] for d in crawled_apis["clinicaltrials"][0]) >= 2


def test_real_studies_have_no_markup_and_no_contacts(crawled_apis):
    studies = real_studies()
    for doc in crawled_apis["clinicaltrials"][0]:
        assert not CTGOV_MARKUP.search(doc["text"]), (doc["id"], CTGOV_MARKUP.search(doc["text"]).group(0))
        contacts = studies[doc["metadata"]["nct_id"]]["protocolSection"].get("contactsLocationsModule", {})
        for value in strings_in(contacts):
            assert "@" not in value or value not in doc["text"]
            assert not re.fullmatch(r"[\d ()+-]{7,}", value) or value not in doc["text"]


def test_real_studies_keep_their_non_ascii_text(crawled_apis):
    studies = real_studies()
    seen = 0
    for doc in crawled_apis["clinicaltrials"][0]:
        p = studies[doc["metadata"]["nct_id"]]["protocolSection"]
        words = {w for module in CTGOV_READ for s in strings_in(p.get(module, {}), CTGOV_IDENTIFIERS)
                 for w in NON_ASCII_WORD.findall(s)}
        seen += len(words)
        assert all(w in doc["text"] for w in words), (doc["id"], [w for w in words if w not in doc["text"]])
    assert seen >= 2


def test_real_extracts_of_both_reply_formats_become_clean_articles(crawled_apis):
    docs, rejected, _ = crawled_apis["wikipedia"]
    assert not rejected
    by_title = {d["title"]: d for d in docs}
    assert set(by_title) == set(REAL_WIKI)
    for title, path in REAL_WIKI.items():
        doc, page = by_title[title], wiki_page(path)
        assert doc["id"] == f"wikipedia-{page['pageid']}" and doc["url"].startswith("https://en.wikipedia.org/wiki/")
        assert len(doc["text"]) > 500 and not MARKUP.search(doc["text"]), MARKUP.search(doc["text"])
        lines = {line.strip().lower() for line in doc["text"].splitlines()}
        assert not lines & DROPPED_SECTIONS  # See also, References, ... dropped with their headings
        lead = re.split(r"\n==|<h2", page["extract"])[0]
        words = set(NON_ASCII_WORD.findall(html.unescape(re.sub(r"<[^>]+>", "", lead))))
        assert all(w in doc["text"] for w in words), [w for w in words if w not in doc["text"]]
        assert {c for c in lead if ord(c) > 127} <= set(doc["text"])


def test_wikipedia_follows_continue_until_the_reply_is_complete(tmp_path, pycache):
    state = FixtureServer(continued_wiki=True)
    with serving(state) as server:
        scraper = Scraper(tmp_path, server.base_url, pycache)
        sources = tmp_path / "sources.yaml"
        sources.write_text(yaml.safe_dump({"web": [], "wikipedia": sorted(CONTINUED_TITLES)}))
        wiki = scraper.run("wikipedia", ALS_SCRAPE__WEB__SOURCES_FILE=str(sources),
                           ALS_SCRAPE__WIKIPEDIA__REQUESTS_PER_SECOND="10")
        assert wiki.returncode == 0, wiki.stderr[-3000:]
    docs, rejected, _ = scraper.published("wikipedia")
    # The first (real) reply has the page without its extract, and "continue"; the extract comes after.
    [doc] = docs
    assert doc["id"] == "wikipedia-23862" and len(doc["text"]) > 5000
    asked = [h.query for h in state.requests("/w/api.php") if h.query["titles"] == ["Python (programming language)"]]
    assert len(asked) == 2 and "imcontinue" not in asked[0]
    assert asked[1].pop("imcontinue") == ["23862|Symbol_portal_class.svg"] and asked[1].pop("continue") == ["||"]
    assert asked[1] == asked[0]
    assert [(r["key"], r["kind"]) for r in rejected] == [("Endless continuation", "malformed")]
    assert "repeats itself" in rejected[0]["reason"]
