"""ClinicalTrials.gov API v2 ``/studies`` pages: each study as sectioned prose (§2.2.2).

Only descriptive fields become text; contacts, locations, officials and sponsors' addresses
are never read, even when the API returns them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from services.scraper.parsing import Malformed, json_body

# Modules requested with ``fields``; contactsLocationsModule is deliberately absent.
FIELDS = "protocolSection.identificationModule,protocolSection.descriptionModule,protocolSection.conditionsModule,protocolSection.designModule,protocolSection.eligibilityModule,protocolSection.armsInterventionsModule,protocolSection.outcomesModule,resultsSection,hasResults"


@dataclass(frozen=True)
class StudiesPage:
    studies: list[dict]
    next_page_token: str | None
    total: int | None


def parse_studies_page(body: bytes) -> StudiesPage:
    data = json_body(body)
    if not isinstance(data, dict) or not isinstance(data.get("studies"), list):
        raise Malformed("not a /studies page: no 'studies' list")
    return StudiesPage(data["studies"], data.get("nextPageToken"), data.get("totalCount"))


# API v2 text fields are CommonMark ("markup" type): a backslash before punctuation escapes it.
_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def _unescape(text: str) -> str:
    """The characters a reader sees: CommonMark backslash escapes resolved (backslash + ">" -> ">")."""
    return _MARKDOWN_ESCAPE.sub(r"\1", text)


def _label(value: str) -> str:
    """API enums as words: PLACEBO_COMPARATOR -> Placebo comparator, PHASE2 -> Phase 2."""
    words = value.replace("_", " ").lower()
    return (words[:5] + " " + words[5:] if words.startswith("phase") and words[5:].isdigit() else words).capitalize()


def _section(title: str, lines: list[str]) -> str:
    lines = [line for line in lines if line and line.strip()]
    return f"{title}\n" + "\n".join(lines) if lines else ""


def _item(head: str, detail: str | None) -> str:
    return f"- {head}: {detail.strip()}" if detail and detail.strip() else f"- {head}"


def nct_id(study: dict) -> str:
    nct = study.get("protocolSection", {}).get("identificationModule", {}).get("nctId")
    if not isinstance(nct, str) or not nct.startswith("NCT"):
        raise Malformed("a study without protocolSection.identificationModule.nctId")
    return nct


def study_text(study: dict) -> str:
    p = study.get("protocolSection", {})
    ident, desc = p.get("identificationModule", {}), p.get("descriptionModule", {})
    cond, design = p.get("conditionsModule", {}), p.get("designModule", {})
    elig, arms = p.get("eligibilityModule", {}), p.get("armsInterventionsModule", {})
    outcomes, results = p.get("outcomesModule", {}), study.get("resultsSection", {})

    overview = [ident.get("officialTitle") and f"Official title: {ident['officialTitle']}"]
    if cond.get("conditions"):
        overview.append("Conditions: " + ", ".join(cond["conditions"]) + ".")
    if cond.get("keywords"):
        overview.append("Keywords: " + ", ".join(cond["keywords"]) + ".")
    if design.get("studyType"):
        phases = ", ".join(_label(ph) for ph in design.get("phases", []) if ph != "NA")
        overview.append(f"Study type: {_label(design['studyType'])}" + (f", {phases}." if phases else "."))

    population = [
        elig.get("sex") and f"Sex: {_label(elig['sex'])}.",
        elig.get("minimumAge") and f"Minimum age: {elig['minimumAge']}.",
        elig.get("maximumAge") and f"Maximum age: {elig['maximumAge']}.",
        "healthyVolunteers" in elig and f"Healthy volunteers: {'yes' if elig['healthyVolunteers'] else 'no'}.",
    ]
    arm_lines = [
        _item(f"{a.get('label', 'Arm')} ({_label(a['type'])})" if a.get("type") else a.get("label", "Arm"),
              a.get("description"))
        for a in arms.get("armGroups", [])
    ]
    intervention_lines = [
        _item(f"{_label(i.get('type', 'OTHER'))}: {i.get('name', '')}", i.get("description"))
        for i in arms.get("interventions", [])
    ]

    def outcome_lines(key: str) -> list[str]:
        return [
            _item(f"{o.get('measure', '')} (time frame: {o['timeFrame']})" if o.get("timeFrame") else o.get("measure", ""),
                  o.get("description"))
            for o in outcomes.get(key, [])
        ]

    result_lines = [
        _item(f"{m.get('title', '')} ({_label(m['type'])})" if m.get("type") else m.get("title", ""),
              m.get("description"))
        for m in results.get("outcomeMeasuresModule", {}).get("outcomeMeasures", [])
    ]
    caveats = results.get("moreInfoModule", {}).get("limitationsAndCaveats", {}).get("description")
    if caveats:
        result_lines.append(f"Limitations and caveats: {caveats.strip()}")

    sections = [
        ident.get("briefTitle", ""),
        "\n".join(line for line in overview if line),
        _section("Brief summary", [desc.get("briefSummary", "")]),
        _section("Detailed description", [desc.get("detailedDescription", "")]),
        _section("Eligibility criteria", [elig.get("eligibilityCriteria", ""), " ".join(x for x in population if x)]),
        _section("Arms", arm_lines),
        _section("Interventions", intervention_lines),
        _section("Primary outcome measures", outcome_lines("primaryOutcomes")),
        _section("Secondary outcome measures", outcome_lines("secondaryOutcomes")),
        _section("Results summary", result_lines),
    ]
    return _unescape("\n\n".join(s.strip() for s in sections if s and s.strip()))


def study_document(study: dict, accessed: date) -> dict:
    nct = nct_id(study)
    p = study["protocolSection"]
    design = p.get("designModule", {})
    return {
        "id": f"ctgov-{nct}",
        "source": "clinicaltrials",
        "url": f"https://clinicaltrials.gov/study/{nct}",
        "title": p["identificationModule"].get("briefTitle", nct),
        "text": study_text(study),
        "date_accessed": accessed.isoformat(),
        "license": "public-domain",
        "metadata": {
            "category": "clinical_trials",
            "nct_id": nct,
            "study_type": design.get("studyType"),
            "phases": design.get("phases", []),
            "has_results": bool(study.get("hasResults")),
            "conditions": p.get("conditionsModule", {}).get("conditions", []),
        },
    }
