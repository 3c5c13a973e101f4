"""The scorer against labelled cases: fact agreement, fabrication precision, hedging, normalisation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from services.evaluator.inputs import load_benchmark
from services.evaluator.scoring import devset
from services.evaluator.scoring.entities import default_entities
from services.evaluator.scoring.fabrication import Lexicon, fabricated
from services.evaluator.scoring.facts import Embedder, FactScorer, judge_answer
from services.evaluator.scoring.hedging import aggregate, hedging
from services.evaluator.scoring.normalize import normalize
from services.evaluator.settings import BENCHMARK, EvalConfig
from shared.schemas.eval import FactMatch, KeyFact

DATA = BENCHMARK.parent
SAMPLE = Path(__file__).resolve().parents[2] / "services" / "scraper" / "sample"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def scorer() -> FactScorer:
    return FactScorer(EvalConfig(), default_entities(), Embedder())


def test_scorer_agrees_with_labelled_cases(scorer):
    """The dev cases (the rules were developed on them): at least 93 % overall, 85 % on paraphrase, all
    three verdicts. Held-out cases are printed, and guard precision: a near miss is never supported."""
    cases = devset.load_cases()
    dev = [c for c in cases if c["split"] == "dev"]
    result = devset.agreement(scorer, dev)
    print(f"\nscorer agreement on {result.n} dev cases: {result.rate:.1%}\n{devset.table(result)}")
    print("disagreements:\n" + "\n".join(result.misses))
    kinds = {c["kind"] for c in dev}
    assert len(dev) >= 150 and sum(c["kind"] == "paraphrase" for c in dev) >= 40
    assert {"exact", "paraphrase", "abbreviation", "number", "negation", "wrong_subject", "unrelated",
            "contradiction"} <= kinds
    assert {c["verdict"] for c in dev} == set(devset.VERDICTS)
    paraphrase, n = result.by_kind["paraphrase"]
    assert result.rate >= 0.93 and paraphrase / n >= 0.85
    heldout = devset.agreement(scorer, [c for c in cases if c["split"] == "heldout"])
    print(f"held-out: {heldout.agreed}/{heldout.n}\n{devset.table(heldout)}")
    assert heldout.n >= 30 and heldout.confusion["all"][("absent", "supported")] == 0


# Issue 25 item 6, raised by the second round of issue 24 (docs/evaluation.md, 2026-12-07): both sets are
# development data since that round, so these floors keep its gains; each sits a case or a few below the
# figure: held-out 20/32, contradicted recall 6/7; validation 203/243, contradicted recall 113/128 and
# precision 113/115. Validation v2, measured once on the rules of that round (213/317, contradicted recall
# 88/124, precision 88/94), is the held-out measure from then on.
FLOORS = {"heldout": {"agreement": 0.59, "recall": 0.8, "precision": 0.8},
          "validation": {"agreement": 0.82, "recall": 0.86, "precision": 0.95},
          "validation_v2": {"agreement": 0.65, "recall": 0.69, "precision": 0.92},
          # measured once on 2026-12-08 with the default rules (non-answers off): 124/214, contradicted recall
          # 50/73, precision 50/62; development data from then on
          "validation_v3": {"agreement": 0.57, "recall": 0.67, "precision": 0.79}}


def _meets(floor: dict[str, float], result: devset.Agreement) -> bool:
    precision, recall = devset.precision_recall(result)["contradicted"]
    return (result.rate >= floor["agreement"] and (recall.estimate or 0) >= floor["recall"]
            and (precision.estimate or 0) >= floor["precision"])


@pytest.mark.parametrize("split", sorted(FLOORS))
def test_agreement_floor_on_cases_written_after_the_rules_or_before_they_changed(scorer, split):
    """An all-"absent" scorer fails every floor (it contradicts nothing and agrees only on the cases
    labelled absent): checked here with the same cases."""
    cases = devset.load_split(split)
    assert _meets(FLOORS[split], devset.agreement(scorer, cases))

    class AllAbsent:
        def judge(self, question, facts, response):
            return [FactMatch(fact=f.text, present=False, verdict="absent") for f in facts]

    assert not _meets(FLOORS[split], devset.agreement(AllAbsent(), cases))


WRONG_VALUE_TYPES = {"year", "date", "count", "percentage", "dose", "duration", "route", "drug", "drug_class", "gene",
                     "protein", "inheritance", "direction", "approval_status", "trial_outcome"}


def _real_fact_cases(split: str, at_least: int) -> tuple[list[dict], Counter]:
    """A validation split's cases and their kinds, each case checked to ask a real item's question about one of
    that item's key facts as the benchmark states it; a wrong value of every type and all three verdicts."""
    cases = devset.load_split(split)
    items = {i.id: i for i in load_benchmark(BENCHMARK)}
    assert len(cases) >= at_least and len({c["case_id"] for c in cases}) == len(cases)
    for case in cases:
        item = items[case["item_id"]]
        assert case["question"] == item.question and case["key_fact"] in item.key_facts, case["case_id"]
        assert case["split"] == split, case["case_id"]
    assert {c["type"] for c in cases if c["kind"] == "wrong_value"} == WRONG_VALUE_TYPES
    assert {c["verdict"] for c in cases} == set(devset.VERDICTS)
    return cases, Counter(c["kind"] for c in cases)


def test_validation_v2_cases_are_real_benchmark_facts_of_every_kind():
    """The second validation set (written before the second round of rules, measured once after it)."""
    cases, kinds = _real_fact_cases("validation_v2", 200)
    assert all(case["response"].strip() for case in cases)
    assert kinds["paraphrase"] >= 80 and {"wrong_value", "negation", "list", "hedge", "unrelated",
                                          "subject_in_question", "refusal", "trap"} <= set(kinds)


def test_validation_v3_cases_are_real_benchmark_facts_of_every_kind():
    """The third validation set (written before any rule change after v2 was measured; measured once on
    2026-12-08). Only the empty-answer cases have an empty response."""
    cases, kinds = _real_fact_cases("validation_v3", 160)
    for case in cases:
        assert (case["kind"] == "empty") == (not case["response"].strip()), case["case_id"]
    assert kinds["paraphrase"] >= 40 and kinds["degenerate"] >= 25 and kinds["other_subject"] >= 20
    assert {"wrong_value", "negation", "list", "hedge", "unrelated", "refusal", "empty"} <= set(kinds)
    assert {c["verdict"] for c in cases if c["kind"] in ("degenerate", "other_subject", "empty")} == {"absent"}


def test_reference_answers_state_their_own_key_facts(scorer):
    """Guards against over-eager negation/subject/contradiction rules: a reference answer must score
    (almost) fully and contradict (almost) nothing."""
    items = load_benchmark(BENCHMARK)
    verdicts = [v for i in items for v in scorer.judge(i.question, i.key_facts, i.reference_answer)]
    share = sum(v.present for v in verdicts) / len(verdicts)
    contradicted = sum(v.verdict == "contradicted" for v in verdicts)
    print(f"\nreference answers: {share:.1%} of {len(verdicts)} key facts found, {contradicted} contradicted")
    assert share >= 0.97 and contradicted <= len(verdicts) * 0.01


@pytest.mark.parametrize("question,fact,response,verdict,reason", [
    ("How does riluzole work?", "inhibits glutamate release",
     "Riluzole does not inhibit glutamate release.", "contradicted", "negation"),
    ("How does riluzole work?", "inhibits glutamate release",
     "There is no evidence that riluzole inhibits glutamate release.", "contradicted", "negation"),
    ("How does riluzole work?", "inhibits glutamate release",
     "Riluzole increases glutamate release.", "contradicted", "opposite"),
    ("How does riluzole work?", "inhibits glutamate release",
     "Riluzole blocks the release of glutamate.", "supported", None),
    ("What did the PHOENIX trial show?", "did not meet primary endpoint",
     "PHOENIX did not meet its primary endpoint.", "supported", None),
    ("What did the PHOENIX trial show?", "did not meet primary endpoint",
     "PHOENIX met its primary endpoint.", "contradicted", "negation"),
    ("How does tofersen work?", "antisense oligonucleotide",
     "Edaravone is an antisense oligonucleotide.", "absent", "wrong_subject"),
    ("How does tofersen work?", "antisense oligonucleotide",
     "Edaravone is an antisense oligonucleotide, while tofersen is a small molecule.", "contradicted",
     "wrong_subject"),
    ("How does tofersen work?", "antisense oligonucleotide",
     "Qalsody (tofersen) is an ASO given intrathecally.", "supported", None),
    ("How many items does the ALSFRS-R have?", "12 items", "The ALSFRS-R has many items.", "absent", None),
    ("How many items does the ALSFRS-R have?", "12 items", "The ALSFRS-R has 10 items.", "contradicted",
     "other_value"),
    ("When did the FDA approve riluzole?", "1995", "The FDA approved riluzole in 2006.", "contradicted",
     "other_value"),
    ("When did the FDA approve riluzole?", "1995", "Riluzole came first, and edaravone followed in 2017.",
     "absent", None),
    ("What is the split-hand sign?", "thenar", "The hypothenar muscles are spared.", "absent", None),
    ("Are astrocytes toxic to motor neurons?", "toxic", "The astrocytes were non-toxic.", "contradicted",
     "negation"),
    ("What was the PHOENIX trial?", "phase 3", "PHOENIX was a Phase III trial.", "supported", None),
    ("What does riluzole monitoring involve?", "ALT", "Report any alteration in symptoms.", "absent", None),
])
def test_three_verdicts(scorer, question, fact, response, verdict, reason):
    got = scorer.judge(question, [KeyFact(text=fact)], response)[0]
    assert (got.verdict, got.rejected) == (verdict, reason)
    assert got.present == (verdict == "supported")


@pytest.mark.parametrize("question,fact,response,verdict", [
    # another value of the fact's type, about the question's subject left implicit (issue 24)
    ("How is tofersen administered?", "intrathecal", "It is given as an intravenous infusion.", "contradicted"),
    ("How is tofersen administered?", "intrathecal", "Edaravone is given as an intravenous infusion.", "absent"),
    ("How is tofersen administered?", "intrathecal", "It is not given intravenously.", "absent"),
    ("What kind of drug is tofersen?", "antisense oligonucleotide", "Tofersen is a monoclonal antibody.",
     "contradicted"),
    ("When was edaravone approved by the FDA?", "May 2017", "It was approved in August 2017.", "contradicted"),
    ("When was edaravone approved by the FDA?", "May 2017", "It was approved in 2017.", "supported"),
    ("What dose of ceftriaxone was tested?", "4 g", "Participants received 4,000 mg a day.", "supported"),
    ("What dose of ceftriaxone was tested?", "4 g", "Participants received 2 g a day.", "contradicted"),
    ("What phase was the VALOR trial?", "phase 3", "VALOR was a phase 2 study.", "contradicted"),
    ("How is SOD1 D90A inherited?", "autosomal recessive", "It is passed on in an X-linked pattern.", "contradicted"),
    ("How often is riluzole taken?", "twice daily", "It is taken once a day.", "contradicted"),
    ("What happens to FVC in ALS?", "declines", "FVC rises steadily.", "contradicted"),
    ("When was the C9orf72 expansion discovered?", "2011", "It was published in 2012.", "contradicted"),
    ("When was the C9orf72 expansion discovered?", "2011", "ALS was described in 1869. Many genes followed.",
     "absent"),
    # a list read item by item; narrowing words required
    ("What is the most common genetic cause of ALS?", "C9orf72",
     "ALS genes include SOD1, C9orf72 and FUS; the most common is SOD1.", "contradicted"),
    ("What is the most common genetic cause of ALS?", "C9orf72",
     "Of SOD1, C9orf72 and FUS, C9orf72 expansions are the most frequent.", "supported"),
    ("What is the strongest risk factor for ALS?", "strongest risk factor", "Older age is a risk factor.", "absent"),
    # numbers that are no quantity of the fact's kind, fragments, negations about something else
    ("When was edaravone approved by the FDA?", "2017", "Edaravone is listed in Table 1.", "absent"),
    ("How much higher is ALS risk in football players?", "4-fold", "A study of 6,823 players found more ALS.",
     "absent"),
    ("Which gene is most often mutated in familial ALS?", "C9orf72", "A.", "absent"),
    ("How does riluzole work?", "inhibits glutamate release",
     "None of the patients stopped riluzole, which inhibits glutamate release.", "supported"),
    ("How does riluzole work?", "inhibits glutamate release",
     "Riluzole not only inhibits glutamate release but also blocks sodium channels.", "supported"),
])
def test_typed_values_subjects_lists_and_qualifiers(scorer, question, fact, response, verdict):
    assert scorer.judge(question, [KeyFact(text=fact)], response)[0].verdict == verdict


@pytest.mark.parametrize("question,fact,response,verdict", [
    # dates, doses, shares and counts compared as what they are (issue 24, second round)
    ("When was tofersen approved by the FDA?", "April 2023", "Tofersen was approved in June 2023.", "contradicted"),
    ("What is the standard dose of riluzole?", "100 mg per day", "Take 100 mg three times a day.", "contradicted"),
    ("What is the standard dose of riluzole?", "100 mg per day", "Take 50 mg twice a day.", "supported"),
    ("What share of ALS is familial?", "10%", "About a third of cases are familial.", "contradicted"),
    ("How many items does the ALSFRS-R have?", "12 items", "It is an 8-item scale scored from 0 to 32.",
     "contradicted"),
    ("How many items does the ALSFRS-R have?", "12 items", "Its total runs from 0 to 48.", "absent"),
    # a symbol is never the optional word; types of mechanism, chemical class, pathway, inheritance
    ("How does baclofen act?", "GABA-B receptor agonist", "Baclofen is a GABA-A receptor agonist.", "contradicted"),
    ("How does edaravone act?", "free radical scavenger", "Edaravone is a calcium channel blocker.", "contradicted"),
    ("To which chemical class does riluzole belong?", "benzothiazole", "Riluzole is a barbiturate.", "contradicted"),
    ("What kind of drug is masitinib?", "tyrosine kinase inhibitor", "Masitinib is an antisense drug.",
     "contradicted"),
    ("How was tofersen approved?", "accelerated approval", "The FDA gave tofersen full approval.", "contradicted"),
    ("How is SETX-related juvenile ALS inherited?", "autosomal dominant", "The juvenile form is recessive.",
     "contradicted"),
    ("Is masitinib approved?", "investigational", "Masitinib has been approved by the FDA.", "contradicted"),
    # a gene's protein asked by the gene's name; a later clause that opens with "it"
    ("What does OPTN encode?", "optineurin", "OPTN encodes TBK1.", "contradicted"),
    ("What does OPTN encode?", "optineurin", "OPTN, TBK1 and SQSTM1 act in autophagy.", "absent"),
    ("How is tofersen administered?", "intrathecal", "Tofersen is not swallowed; it is infused into a vein.",
     "contradicted"),
    # a typed value in other words, abbreviations, spellings; a frame that denies a negative fact
    ("How is tofersen given?", "intrathecal", "It is delivered by spinal injection.", "supported"),
    ("How is oral edaravone taken?", "feeding tube", "It can be given through a gastrostomy tube.", "supported"),
    ("How is oral edaravone taken?", "feeding tube", "It is swallowed as a liquid.", "absent"),
    ("What is measured to follow breathing in ALS?", "forced vital capacity", "Her FVC is checked every visit.",
     "supported"),
    ("Is there a cure for ALS?", "no cure", "It is a myth that ALS is incurable.", "contradicted"),
    ("When was the C9orf72 expansion found?", "2011", "It was not identified until 2011.", "supported"),
])
def test_typed_values_second_round(scorer, question, fact, response, verdict):
    assert scorer.judge(question, [KeyFact(text=fact)], response)[0].verdict == verdict


def test_ranges_are_in_the_facts_own_unit(scorer):
    delay = KeyFact(text="12 months", accepted_range=(10, 16))
    question = "How long is the diagnostic delay?"
    assert scorer.judge(question, [delay], "It is usually about a year.")[0].verdict == "supported"
    assert scorer.judge(question, [delay], "It is usually 2 to 3 weeks.")[0].verdict == "contradicted"


def test_a_value_another_key_fact_states_is_no_other_answer(scorer):
    facts = [KeyFact(text="autosomal dominant"), KeyFact(text="X-linked")]
    got = scorer.judge("How is familial ALS inherited?", facts, "It can be X-linked.")
    assert [f.verdict for f in got] == ["absent", "supported"]


def test_numbers_honour_tolerance_range_aliases_and_units(scorer):
    question = "How common are C9orf72 expansions?"
    tolerant = KeyFact(text="40%", tolerance=5)
    assert scorer.judge(question, [tolerant], "They explain roughly 30 to 40% of familial ALS.")[0].present
    assert scorer.judge(question, [tolerant], "They explain 43% of familial ALS.")[0].present
    other = scorer.judge(question, [KeyFact(text="40%")], "C9orf72 expansions explain 43% of familial ALS.")[0]
    assert other.verdict == "contradicted"
    # the answer's first clause is about the question's subject even when it does not repeat it (issue 24);
    # a share in a later clause off the question's topic is no rival value
    assert scorer.judge(question, [KeyFact(text="40%")], "They explain 43% of it.")[0].verdict == "contradicted"
    later = "Riluzole slows progression. About 43% of patients take it."
    assert scorer.judge(question, [KeyFact(text="40%")], later)[0].verdict == "absent"
    ranged = KeyFact(text="12-20%", accepted_range=(12, 20))
    assert scorer.judge(question, [ranged], "About 15% of familial cases.")[0].present
    alias = KeyFact(text="1869", aliases=["1874"])
    assert scorer.judge("When did Charcot describe ALS?", [alias], "Charcot described it in 1874.")[0].present
    survival = KeyFact(text="2-3 months")
    q = "How much does riluzole extend survival?"
    assert scorer.judge(q, [survival], "Riluzole extends survival by about 12 weeks.")[0].present
    assert scorer.judge(q, [survival], "Riluzole extends survival by 2 years.")[0].verdict == "contradicted"


def test_a_number_that_is_another_key_fact_of_the_item_contradicts_nothing(scorer):
    facts = [KeyFact(text="50 mg"), KeyFact(text="100 mg per day")]
    got = scorer.judge("What is the dose of riluzole?", facts, "The dose of riluzole is 100 mg per day.")
    assert [f.verdict for f in got] == ["absent", "supported"]


def test_deny_polarity_and_uncounted_facts(scorer):
    fact = KeyFact(text="approved in the European Union", polarity="deny", counted=False)
    q = "Is edaravone approved in the European Union?"
    denied = scorer.judge(q, [fact], "Edaravone is not approved in the European Union.")[0]
    assert denied.verdict == "supported" and denied.counted is False
    assert scorer.judge(q, [fact], "Edaravone is approved in the European Union.")[0].verdict == "contradicted"
    pathology = KeyFact(text="TDP-43 pathology", polarity="deny")
    q = "Do SOD1-ALS cases show TDP-43 pathology?"
    assert scorer.judge(q, [pathology], "SOD1-ALS typically lacks TDP-43 pathology.")[0].verdict == "supported"
    loss = KeyFact(text="loss of enzyme activity", polarity="deny")
    got = scorer.judge("How do SOD1 mutations cause disease?", [loss],
                       "They act through a toxic gain of function rather than loss of enzyme activity.")[0]
    assert got.verdict == "supported"


def test_yes_no_answer_is_read_from_the_first_word():
    assert judge_answer("no", "No, there is no cure.").verdict == "supported"
    assert judge_answer("no", "Yes, tofersen cures it.").verdict == "contradicted"
    assert judge_answer("yes", "Tofersen was approved in 2023.").verdict == "absent"


def test_normalisation_unifies_numbers_units_and_abbreviations():
    assert normalize("two thousand eleven") == "2011"
    assert normalize("fifty milligrams") == normalize("50 mg") == "50 mg"
    assert normalize("two to three months") == normalize("2-3 months")
    assert normalize("ninety-seven per cent") == normalize("97%")
    assert normalize("TARDBP") == normalize("TDP-43")
    assert normalize("amyotrophic lateral sclerosis functional rating scale revised") == normalize("ALSFRS-R")


def test_fabrication_precision_on_labelled_cases():
    corpus = [json.loads(line)["text"] for p in sorted(SAMPLE.glob("*.jsonl")) for line in p.read_text().splitlines()]
    lexicon = Lexicon.build(corpus, default_entities())
    tp = fp = fn = 0
    for case in _jsonl(DATA / "fabrication_cases.jsonl"):
        got, expected = set(fabricated(case["response"], lexicon)), set(case["fabricated"])
        tp, fp, fn = tp + len(got & expected), fp + len(got - expected), fn + len(expected - got)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"\nfabrication: precision {precision:.1%}, recall {recall:.1%} ({tp} found, {fp} false, {fn} missed)")
    assert precision >= 0.9 and recall >= 0.8


def test_trial_id_absent_from_corpus_is_fabricated_and_present_one_is_not():
    lexicon = Lexicon.build(["The VALOR trial (NCT02623699) tested tofersen."], default_entities())
    assert fabricated("See NCT02623699 and NCT09999999.", lexicon) == ["NCT09999999"]


def test_fabrication_knows_the_prompt_titles_ids_lab_tests_and_general_vocabulary():
    """Flags seen on real answers that were wrong: ids and titles copied from the prompt or the corpus,
    a name from the question, real lab tests and words outside MiniLM's small vocabulary."""
    lexicon = Lexicon.build(["Riluzole is approved."], default_entities(),
                            names=["sample-ct-NCT09100006", "A Study of Tofersen (BIIB067)"])
    shown = ["Which gene causes ALS4?", "sample-pmc-0042-abstract", "Trial of CNM-Au8 (RESCUE-ALS)"]
    answer = ("See sample-ct-NCT09100006 and BIIB067; ALS4 is in [sample-pmc-0042-abstract], like CNM-Au8. "
              "Creatinine and myelin are real. Neurovaxine and NCT09999999 are not.")
    assert fabricated(answer, lexicon, shown) == ["NCT09999999", "Neurovaxine"]


def test_hedging_ignores_the_month_may_regulatory_terms_and_numeric_approximation():
    assert not hedging("Edaravone was approved in May 2017 and Radicava ORS on 12 May 2022.")["hedged"]
    assert not hedging("Approval rests on an effect reasonably likely to predict clinical benefit.")["hedged"]
    approximate = hedging("Riluzole extends survival by approximately 2-3 months, about 10 % of cases.")
    assert not approximate["hedged"] and approximate["approximations"] == 2
    assert hedging("It may slow progression.")["cues"] == {"may": 1}


def test_a_refusal_declines_and_does_not_answer_after():
    assert hedging("The passage does not provide the approval date.")["refusal"]
    assert not hedging("Riluzole does not provide a cure.")["refusal"]
    assert not hedging("The passage does not provide the year. Riluzole was approved by the FDA in 1995.")["refusal"]


def test_record_numbers_are_no_invented_names():
    lexicon = Lexicon(set())
    text = "Approved by the ethics committee (approval no. KY2019-045; IRB00012345). Neurovaxine helps."
    assert fabricated(text, lexicon) == ["Neurovaxine"]


def test_hedging_counts_cues_and_refusals():
    h = hedging("Riluzole may slow progression; it is thought to reduce glutamate, possibly.")
    assert h["count"] == 3 and h["hedged"] and not h["refusal"]
    assert hedging("The context does not contain enough information to answer.")["refusal"]
    summary = aggregate([h, hedging("Riluzole inhibits glutamate release.")])
    assert summary["hedged_rate"] == 0.5 and summary["cues"]["may"] == 1
