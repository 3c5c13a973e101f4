"""The pure parsers on recorded-format responses: what is kept, what is dropped, what is malformed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from services.scraper.parsing import Malformed
from services.scraper.parsing.ctgov import parse_studies_page, study_document
from services.scraper.parsing.eutils import parse_esearch
from services.scraper.parsing.jats import article_documents, classify_licence, parse_articleset
from services.scraper.parsing.mediawiki import clean_extract, parse_query
from services.scraper.parsing.webpage import main_text

FIXTURES = Path(__file__).parent / "fixtures"
TODAY = date(2026, 1, 2)


@pytest.fixture(scope="module")
def articles():
    return {a.pmcid: a for a in parse_articleset((FIXTURES / "pmc" / "efetch.xml").read_bytes())}


def test_jats_body_keeps_prose_and_drops_figures_tables_references_and_supplements(articles):
    docs = {d["metadata"]["part"]: d for d in article_documents(articles["PMC10000001"], TODAY)}
    body = docs["body"]["text"]
    assert "GGGGCC hexanucleotide repeat expansion" in body
    assert "Mechanisms" in body.splitlines()  # nested section titles stay as headings
    for marker in ("FIGURE-CAPTION", "TABLE-CAPTION", "TABLE-CELL", "REFERENCE-MARKER", "SUPPLEMENT-MARKER",
                   "ACKNOWLEDGEMENT-MARKER", "Rosen et al"):
        assert marker not in body
    assert "The first ALS gene, SOD1, was identified in 1993. Since then more than forty genes have been " \
           "linked to the disease." in body  # citation markers and their brackets are gone


def test_jats_abstract_is_its_own_document_and_the_graphical_abstract_is_not(articles):
    docs = {d["metadata"]["part"]: d for d in article_documents(articles["PMC10000001"], TODAY)}
    assert set(docs) == {"abstract", "body"}
    abstract = docs["abstract"]
    assert abstract["id"] == "pmc-PMC10000001-abstract"
    assert abstract["text"].startswith("Background\n\nAmyotrophic lateral sclerosis (ALS) is a fatal")
    assert "GRAPHICAL-ABSTRACT" not in abstract["text"]
    assert abstract["title"] == "Genetic architecture of amyotrophic lateral sclerosis: from SOD1 to C9orf72"
    assert abstract["license"] == "CC-BY-4.0"
    assert abstract["url"] == "https://pmc.ncbi.nlm.nih.gov/articles/PMC10000001/"
    assert abstract["metadata"] == {
        "category": "research", "pmcid": "PMC10000001", "pmid": "37000001", "doi": "10.3389/fnins.2023.000001",
        "journal": "Frontiers in Neuroscience", "year": "2023", "article_type": "review-article",
        "license_url": "https://creativecommons.org/licenses/by/4.0/", "part": "abstract",
    }


def test_jats_formulas_and_superscript_citations_leave_no_debris(articles):
    body = {d["metadata"]["part"]: d for d in article_documents(articles["PMC10000002"], TODAY)}["body"]["text"]
    assert "about two to three months." in body
    assert "Cox model adjusted for age" in body
    assert "FORMULA-MARKER" not in body and "SUPPLEMENT-MARKER" not in body


def test_jats_article_whose_publisher_withholds_the_body_gives_its_abstract_only(articles):
    docs = article_documents(articles["PMC10000004"], TODAY)
    assert [d["id"] for d in docs] == ["pmc-PMC10000004-abstract"]  # pub-id-type="pmc" without the prefix


def test_jats_licences_from_href_ali_ref_and_licence_text(articles):
    assert [(p, articles[p].licence.id, articles[p].licence.allowed) for p in sorted(articles)] == [
        ("PMC10000001", "CC-BY-4.0", True),        # xlink:href
        ("PMC10000002", "CC-BY-NC-4.0", True),     # ali:license_ref only
        ("PMC10000003", "CC-BY-NC-ND-4.0", False),  # NoDerivatives is refused
        ("PMC10000004", "public-domain", True),    # licence sentence only
        ("PMC10000005", "CC0-1.0", True),
    ]


@pytest.mark.parametrize(("url", "text", "expected", "allowed"), [
    (None, "Distributed under the Creative Commons Attribution-ShareAlike 4.0 licence.", "CC-BY-SA-4.0", False),
    (None, "Creative Commons Attribution Non-Commercial License 3.0", "CC-BY-NC-3.0", True),
    (None, "This article is a US Government work and is not subject to copyright.", "public-domain", True),
    (None, "© 2020 Elsevier. All rights reserved.", "unknown", False),
    ("http://creativecommons.org/licenses/by-nd/2.0/", "", "CC-BY-ND-2.0", False),
])
def test_licence_classification(url, text, expected, allowed):
    licence = classify_licence(url, text)
    assert (licence.id, licence.allowed) == (expected, allowed)


@pytest.mark.parametrize(("body", "reason"), [
    ((FIXTURES / "pmc" / "efetch.xml").read_bytes()[:6000], "truncated or invalid XML"),
    ((FIXTURES / "web" / "not_found.html").read_bytes(), "an HTML page"),
    (b"<?xml version='1.0'?><eSearchResult><Count>0</Count></eSearchResult>", "expected <pmc-articleset>"),
    ((FIXTURES / "pmc" / "efetch.xml").read_text().replace("Amyotrophic", "Amyotrophic \u00e9").encode("latin-1", "replace"),
     "not valid UTF-8"),
])
def test_malformed_efetch_replies_are_refused_with_a_reason(body, reason):
    with pytest.raises(Malformed, match=reason):
        parse_articleset(body)


def test_esearch_envelope():
    page = parse_esearch((FIXTURES / "pmc" / "esearch.json").read_bytes())
    assert (page.count, page.retstart, page.ids[:2], page.query_key) == (5, 0, ["10000001", "10000002"], "1")
    assert page.webenv.startswith("MCID_")


@pytest.mark.parametrize(("body", "reason"), [
    ((FIXTURES / "pmc" / "esearch_error.json").read_bytes(), "esearch error: Invalid query"),
    (b'{"esearchresult": {"count": "3",', "invalid JSON"),
    (b"<!DOCTYPE html><html><body>Service unavailable</body></html>", "an HTML page where JSON was expected"),
    (b'{"error":"API rate limit exceeded","api-key":"1.2.3.4","count":"11","limit":"10"}', "rate limit"),
])
def test_malformed_esearch_replies(body, reason):
    with pytest.raises(Malformed, match=reason):
        parse_esearch(body)


def test_clinical_trial_becomes_sectioned_prose_without_contacts_or_locations():
    page = parse_studies_page((FIXTURES / "ctgov" / "studies_page1.json").read_bytes())
    assert page.next_page_token == "NF0g5JGBlPMuwQY" and page.total == 3
    doc = study_document(page.studies[0], TODAY)
    text = doc["text"]
    assert doc["id"] == "ctgov-NCT02623699" and doc["license"] == "public-domain"
    assert doc["metadata"]["category"] == "clinical_trials" and doc["metadata"]["has_results"] is True
    headings = [line for line in text.splitlines() if line in {
        "Brief summary", "Detailed description", "Eligibility criteria", "Arms", "Interventions",
        "Primary outcome measures", "Secondary outcome measures", "Results summary"}]
    assert headings == ["Brief summary", "Detailed description", "Eligibility criteria", "Arms", "Interventions",
                        "Primary outcome measures", "Secondary outcome measures", "Results summary"]
    assert "Study type: Interventional, Phase 1, Phase 2, Phase 3." in text
    assert "- Drug: Tofersen: Administered by intrathecal bolus injection." in text
    assert "- Part C: Placebo (Placebo comparator): Participants received placebo" in text
    assert "(time frame: Baseline to Day 197)" in text
    assert "Limitations and caveats: Part C was followed by an open-label extension" in text
    for private in ("CONTACT-MARKER", "OFFICIAL-MARKER", "LOCATION-MARKER", "POC-MARKER", "866-633-4636", "02114"):
        assert private not in text


def test_clinical_trial_page_that_is_not_a_studies_page_is_malformed():
    with pytest.raises(Malformed, match="invalid JSON"):
        parse_studies_page(b'{"studies":[{"protocolSection":')
    with pytest.raises(Malformed, match="no 'studies' list"):
        parse_studies_page(b'{"message": "invalid pageToken"}')


def test_wikipedia_extract_loses_see_also_references_and_links_sections():
    [page] = parse_query((FIXTURES / "wikipedia" / "amyotrophic_lateral_sclerosis.json").read_bytes())
    text = clean_extract(page.extract)
    assert text.splitlines()[0].startswith("Amyotrophic lateral sclerosis (ALS), also known as motor neuron")
    assert "Signs and symptoms" in text.splitlines() and "Bulbar onset" in text.splitlines()
    assert "==" not in text
    for marker in ("SEE-ALSO", "REFERENCES-MARKER", "SOURCES-MARKER", "EXTERNAL-MARKER"):
        assert marker not in text
    assert (page.pageid, page.url) == (4384, "https://en.wikipedia.org/wiki/Amyotrophic_lateral_sclerosis")


def test_wikipedia_missing_page_and_api_error():
    [page] = parse_query((FIXTURES / "wikipedia" / "missing.json").read_bytes())
    assert page.missing
    with pytest.raises(Malformed, match="MediaWiki API error maxlag"):
        parse_query((FIXTURES / "wikipedia" / "maxlag.json").read_bytes())


def test_wikipedia_formatversion_1_reply_is_read_and_its_empty_string_missing_flag_counts():
    # formatversion=1 (the API's default): pages keyed by id, flags written as "" (falsy in Python).
    body = (b'{"batchcomplete":"","query":{"pages":{"-1":{"ns":0,"title":"Nope","missing":""},'
            b'"12":{"pageid":12,"ns":0,"title":"Here","extract":"Some text."}}}}')
    missing, here = parse_query(body)
    assert missing.missing and (not here.missing and here.pageid == 12 and here.extract == "Some text.")


def test_wikipedia_html_extract_becomes_plain_lines_with_dropped_sections_applied():
    extract = ('<p><b>SOD1</b> is an enzyme &amp; a gene – on chromosome 21.</p>\n<!-- note -->'
               '<h2><span id="Function">Function</span></h2>\n<p>It binds copper.</p><ul><li>one</li><li>two</li></ul>'
               '<h2>References</h2><ol><li>REFERENCES-MARKER</li></ol>')
    assert clean_extract(extract).splitlines() == [
        "SOD1 is an enzyme & a gene – on chromosome 21.", "", "Function", "It binds copper.", "one", "two"]


def test_ctgov_commonmark_escapes_are_resolved_in_study_text():
    study = {"protocolSection": {"identificationModule": {"nctId": "NCT00000001", "briefTitle": "T"},
                                 "descriptionModule": {"briefSummary": "Glucose \\>126 mg/dl \\[QOL\\]; path C:\\data"}}}
    text = study_document(study, date(2025, 1, 1))["text"]
    assert "Glucose >126 mg/dl [QOL]; path C:\\data" in text


def test_web_main_text_leaves_out_navigation_footer_cookie_banner_and_comments():
    for name, expected in (("fact_sheet.html", "Tofersen is an antisense oligonucleotide"),
                           ("narrative.html", "bank my voice")):
        title, text = main_text((FIXTURES / "web" / name).read_bytes(), "utf-8", f"https://example.org/{name}", 400)
        assert expected in text and title
        for marker in ("NAV-MARKER", "FOOTER-MARKER", "COOKIE-MARKER", "COMMENT-MARKER", "ASIDE-MARKER"):
            assert marker not in text


def test_web_error_page_served_with_200_and_wrong_encoding_are_malformed():
    with pytest.raises(Malformed, match="an error page or no article"):
        main_text((FIXTURES / "web" / "not_found.html").read_bytes(), "utf-8", "https://example.org/x", 400)
    with pytest.raises(Malformed, match="not valid utf-8"):
        main_text((FIXTURES / "web" / "latin1_declared_utf8.html").read_bytes(), "utf-8", "https://example.org/y", 400)
