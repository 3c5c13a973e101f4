"""The comparison report's content: sections in the order of design §9.4, from the analysis numbers.

Every rate is printed with its 95 % interval and n (``stats.Interval.text``); every comparison of
systems is paired on the same items; categories under ``stats.MIN_COMPARE_N`` items are marked.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.evaluator import stats
from services.evaluator.coverage import AbsentFact
from services.evaluator.report import analysis, charts
from services.evaluator.report.document import Chart, Section, Table
from services.evaluator.taxonomy import MATRIX_ROWS
from shared.schemas.eval import SYSTEMS, BenchmarkItem, categories_of
from shared.schemas.experiment import EXPOSURE_BUCKETS, ExperimentResult

TITLE = "ALS-LM: from-scratch model vs RAG baseline"
ANSWER_CHARS = 400  # per-question table: longer answers are cut, the full text is in the eval run


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


@dataclass
class Experiment:
    result: ExperimentResult
    run: str
    curves: list[dict]
    exposure: dict


def _statistics(seed: int, family: int) -> str:
    return (f"Statistics: every rate is given with its {stats.LEVEL:.0%} interval and n — a {stats.METHOD} over "
            f"items ({stats.RESAMPLES:,} resamples, seed {seed}); below {stats.MIN_INTERVAL_N} items the interval "
            "is undefined; when every item has the same value 0 or 1 the interval is the exact Clopper-Pearson one. "
            f"An item is {analysis.CORRECT}; the graded accuracy (the share of its counted key facts supported, a "
            "yes/no answer counting as one more) is given beside it. Systems are compared on the items both "
            "answered: a paired bootstrap interval of the difference and an exact McNemar test. The family of "
            f"tests is every McNemar test this report prints ({family}: each pair of systems on strict correctness, "
            "over all questions and per category, and on answers with a hallucinated claim); each p-value is given "
            "as computed and Holm-adjusted over that family, and only the adjusted one says whether a difference "
            "is significant. Intervals are not adjusted. Categories with fewer than "
            f"{stats.MIN_COMPARE_N} items are marked too small to compare and carry no test.")


TOO_SMALL = "†"
TOO_SMALL_NOTE = f"{TOO_SMALL} fewer than {stats.MIN_COMPARE_N} items: too small to compare."


def _cell(interval: stats.Interval, too_small: bool = False) -> str:
    return interval.text() + (f" {TOO_SMALL}" if too_small else "")


def _comparison_blocks(comparisons: list[dict]) -> list:
    """Comparable rows in a table; groups under ``MIN_COMPARE_N`` paired items named in one line."""
    rows, small = [], []
    for c in comparisons:
        diff, test = stats.Interval(**c["difference"]), stats.McNemar(**c["mcnemar"])
        where = c["category"] or "all questions"
        if c["too_small"]:
            small.append(f"{c['a']} − {c['b']} on {where} (n={diff.n})")
            continue
        rows.append([f"{c['a']} − {c['b']}", where, str(diff.n), diff.text(signed=True),
                     f"{test.a_only} / {test.b_only}", f"{test.p_value:.3g}", _holm(test)])
    blocks: list = []
    if rows:
        blocks.append(Table(["a − b", "items", "n", "graded accuracy difference", "correct only in a / only in b",
                             "McNemar p", "Holm-adjusted p"], rows))
    if small:
        blocks.append(f"Too small to compare (fewer than {stats.MIN_COMPARE_N} paired items): " + "; ".join(small)
                      + ".")
    return blocks


def _holm(test: stats.McNemar) -> str:
    return "-" if test.p_holm is None else f"{test.p_holm:.3g}"


def _per_question(rows: list[dict]) -> Table:
    table = Table(["id", "question", "system", "answer", "supported", "contradicted", "missing", "fabricated"], [])
    for row in rows:
        for k, a in enumerate(row["answers"]):
            answer = " ".join(a["answer"].split())
            if len(answer) > ANSWER_CHARS:
                answer = answer[:ANSWER_CHARS] + " …"
            table.rows.append([row["id"] if k == 0 else "", row["question"] if k == 0 else "", a["system"],
                               answer or "(empty)", "; ".join(a["supported"]) or "-",
                               "; ".join(a["contradicted"]) or "-", "; ".join(a["missing"]) or "-",
                               ", ".join(a["fabricated"]) or "-"])
    return table


def compose(systems: dict[str, analysis.SystemData], items: list[BenchmarkItem], retrieval: dict | None,
            contamination: dict, command: str, seed: int, figures: dict[str, dict], comparisons: list[dict],
            matrices: dict[str, dict], experiment: Experiment | None = None,
            absent: list[AbsentFact] | None = None, hallucination: list[dict] | None = None,
            family: int = 0, sources: list[str] | None = None, stored: dict[str, str] | None = None,
            findings: list[str] | None = None) -> list[Section]:
    names = list(systems)
    questions = {i.id: i.question for i in items}
    sections = [_headline_section(systems, figures, items, absent or [], sources or [], seed, stored or {},
                                  findings or [])]
    sections += [Section("About this report", [
        "A research comparison, not a medical resource. Every number below is computed from the stored "
        f"artifacts of these runs and regenerated by `{command}`: "
        + "; ".join(f"{stage} {run}" for s in systems.values() for stage, run in sorted(s.runs.items()))
        + (f"; experiment {experiment.run}" if experiment else "") + ".",
        (f"Benchmark: {len(items)} questions. Key facts are judged by the automatic scorer (normalisation, "
         "stemming, synonyms, number words, fuzzy and embedding matching) as supported, contradicted or absent. "
         f"An item is {analysis.CORRECT} (strict correctness, the same bar for an item of one fact and of five); "
         "graded accuracy per item is the share of its counted key facts supported (design §8.2), a yes/no "
         "answer counting as one more."),
        _statistics(seed, family),
    ] + [f"Missing: no score-{s} run, so the {s} system is absent from this report." for s in SYSTEMS
         if s not in systems])]

    sections.append(_benchmark_section(items, absent or []))
    overall = Table(["system", "model", "graded accuracy", analysis.FIGURES["correct"], "key facts supported",
                     "key facts contradicted", "echo baseline"], [])
    for name, s in systems.items():
        f = figures[name]["figures"]
        model = next((r.model for r in s.responses if r.model), "")
        echo = s.scores.summary.get("echo_baseline")
        overall.rows.append([name, model, f["accuracy"].text(), f["correct"].text(), f["facts_supported"].text(),
                             f["facts_contradicted"].text(),
                             stats.Interval(**echo["accuracy_interval"]).text() if echo else "-"])
    categories = [c for c in categories_of(i.category for i in items)
                  if any(figures[n]["by_category"][c]["n"] for n in names)]
    category_rows = [[c, *(_cell(figures[n]["by_category"][c]["figures"]["accuracy"],
                                 figures[n]["by_category"][c]["too_small"]) for n in names)] for c in categories]
    sections.append(_hallucination_section(systems, seed, hallucination or []))
    sections.append(Section("Accuracy", [
        overall,
        ("Fact shares pool the key facts of all items; their intervals resample whole items. Echo baseline: "
         "the accuracy each question earns when scored as its own answer, on the same items — what repeating "
         "the question is worth."),
        Chart("accuracy_overall", "Mean accuracy per system, with 95 % intervals",
              charts.grouped_bars("Accuracy", ["all questions"],
                                  {n: [figures[n]["figures"]["accuracy"]] for n in names}, "accuracy")),
        Table(["category", *names], category_rows),
        TOO_SMALL_NOTE,
        Chart("accuracy_by_category", "Accuracy per benchmark category, with 95 % intervals",
              charts.grouped_bars("Accuracy by category", categories,
                                  {n: [figures[n]["by_category"][c]["figures"]["accuracy"] for c in categories]
                                   for n in names}, "accuracy")),
    ]))

    if comparisons:
        sections.append(Section("Paired comparisons", [
            ("Each row is system a minus system b on the questions both answered: the graded accuracy difference "
             "in percentage points with its paired bootstrap interval, then the items only a / only b got "
             "strictly correct and the exact McNemar p-value on those discordant items, as computed and "
             f"Holm-adjusted over the report's {family} tests (see Statistics)."),
            *_comparison_blocks(comparisons),
        ]))

    if experiment is not None:
        sections += _experiment_sections(experiment, systems, figures)

    sections.append(Section("Failure modes (design §8.3)", [
        "Sources: " + "; ".join(f"{n}: {m['source']}" for n, m in matrices.items()) + ". Automatic proxies are "
        "rules over the scores and the response text (see services/evaluator/taxonomy.py), not judgements; "
        "manual reviews replace them per system as soon as one exists (`als-lm eval review`). Refusals and "
        "non-answers (empty, looping or garbled text, fragments, off-topic continuations) are outside the matrix.",
        Table(["response classification", *names],
              [[row.replace("_", " "), *(m["intervals"][row].text() for m in matrices.values())]
               for row in MATRIX_ROWS]
              + [["refusal (outside the matrix)", *(m["intervals"]["refusal"].text() for m in matrices.values())],
                 ["non-answer (outside the matrix)",
                  *(m["intervals"]["non_answer"].text() for m in matrices.values())]]),
        Chart("failure_modes", "Failure-mode distribution, with 95 % intervals",
              charts.grouped_bars("Failure modes", [r.replace("_", " ") for r in (*MATRIX_ROWS, "non_answer")],
                                  {n: [m["intervals"][r] for r in (*MATRIX_ROWS, "non_answer")]
                                   for n, m in matrices.items()}, "share")),
    ]))

    wins_blocks: list = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            w = analysis.wins(systems[a], systems[b])
            wins_blocks += [
                (f"{a} vs {b}: on {w['common']} common questions {a} scores higher on {len(w['a_wins'])}, "
                 f"{b} on {len(w['b_wins'])}, and {w['ties']} are ties. The largest differences (at most 10 each):"),
                f"{a} better:", _wins_table(w["a_wins"], a, b, questions),
                f"{b} better:", _wins_table(w["b_wins"], a, b, questions),
            ]
    if wins_blocks:
        sections.append(Section("Where each system wins", wins_blocks))

    if retrieval is not None:
        missed = retrieval["items_retrieved_but_missed"]
        sections.append(Section("Retrieval quality", [
            (f"Fact recall@{retrieval['k']}: {retrieval['fact_recall_interval'].text()} of key facts occur in the "
             "retrieved chunks (same matcher as the scorer, without the polarity checks; n counts questions); "
             f"{retrieval['items_all_facts']} of {len(retrieval['items'])} questions had every key fact retrieved."),
            Chart("retrieval_recall", "Per-question fact recall of the retrieved chunks",
                  charts.histogram("Fact recall@k per question", [r["recall"] for r in retrieval["items"]],
                                   "share of key facts in the top-k chunks")),
            (f"Retrieved but not used: {retrieval['facts_retrieved_but_missed']} key facts (questions: {len(missed)}) "
             "were in the retrieved context yet absent from, or contradicted in, the generator's answer."),
            Table(["id", "facts in context but not in the answer"],
                  [[r["id"], "; ".join(r["missed"])] for r in missed[:20]]),
        ]))

    hedge_rows = []
    for name, s in systems.items():
        f = figures[name]["figures"]
        h = analysis.hedging_vs_accuracy(s, seed)
        hedge_rows.append([name, f["hedged"].text(), f"{s.scores.summary['hedging']['mean_cues']:.2f}",
                           h["hedged"].text(), h["confident"].text(), f["refusal"].text(), f["fabrication"].text(),
                           ", ".join(list(s.scores.summary["fabricated_entities"])[:8]) or "-"])
    rate_names = ("hedged", "refusal", "fabrication")
    sections.append(Section("Hedging and fabrication", [
        ("Hedging counts uncertainty cues (may, might, is thought to, ...); fabrication flags drug-, gene- or "
         "trial-like names that occur neither in the training corpus, nor in the curated entity list, nor in "
         "general English."),
        Table(["system", "hedged responses", "cues per response", "accuracy when hedged",
               "accuracy when confident", "refusals", "responses with fabricated names", "most frequent"], hedge_rows),
        Chart("hedging_fabrication", "Hedging, refusal and fabrication rates, with 95 % intervals",
              charts.grouped_bars("Rates", list(rate_names),
                                  {n: [figures[n]["figures"][r] for r in rate_names] for n in names}, "share")),
    ]))

    sections.append(_leakage_section(contamination))
    sections.append(Section("Every question", [
        ("Each system's answer (whitespace collapsed, cut at "
         f"{ANSWER_CHARS} characters) and what the scorer made of each key fact: supported, contradicted "
         "(denied, or another number/year/gene/direction stated), or missing — with the reason when the fact "
         "was found but rejected (negation, wrong subject). Fabricated names as flagged by the detector."),
        _per_question(analysis.per_question(items, systems)),
    ]))
    return sections


def _hallucination_section(systems: dict[str, analysis.SystemData], seed: int, paired: list[dict]) -> Section:
    """How much of what each system says is false or unsupported, over every answer."""
    rows, outcomes, faithful = [], [], []
    for name, s in systems.items():
        c = analysis.claim_figures(s, seed)
        if c is None:
            rows.append([name, "not scored for claims (an older score run)", "-", "-", "-", "-"])
        else:
            pooled, per = c["pooled"], c["per_answer"]
            rows.append([name, pooled["hallucinated"].text(), pooled["contradicted"].text(),
                         pooled["unverifiable"].text(), pooled["supported"].text(),
                         f"{c['claims']} claims in {c['answers']} answers"])
            outcomes.append([name, per["hallucinated"].text(), per["all_supported"].text(), per["no_claim"].text()])
        if f := s.scores.summary.get("faithfulness"):
            faithful.append([name, *(stats.Interval(**f[k]).text() for k in (
                "supported_by_context", "contradicted_by_context", "citation_correctness", "answer_relevancy",
                "context_precision", "mrr")),
                (f"{f['n_citations']} citations, {f['citations_not_retrieved']} to a source not retrieved, "
                f"{f['citations_unsupported']} not supported by the cited chunk")])
    blocks: list = [
        ("Every answer is split into atomic claims, each judged against the reference answer and the corpus: "
         "supported, contradicted or unverifiable (docs/evaluation.md). Pooled over claims: the share of all "
         "claims of all answers that are contradicted or unverifiable (hallucinated), each answer weighing by "
         "its number of claims; the interval resamples answers whole and n counts answers."),
        Table(["system", "hallucinated claims", "contradicted", "unverifiable", "supported", "claims"], rows)]
    if outcomes:
        blocks += [("Per answer, over all answers: each answer falls in one outcome — at least one hallucinated "
                    "claim, every claim supported, or no claim at all (a fragment, a refusal, an off-topic "
                    "continuation: counted as its own outcome, not dropped). The three shares add up to 100 %."),
                   Table(["system", "answers with a hallucinated claim", "answers with every claim supported",
                          "answers without a claim"], outcomes)]
    tested = [p for p in paired if not p["too_small"]]
    if tested:
        blocks += [("Paired on the questions both answered: the difference in the share of answers with a "
                    "hallucinated claim (bootstrap), and McNemar on that outcome (p as computed, and Holm-adjusted "
                    "over the report's family). An answer without a claim counts as none hallucinated here, so "
                    "read it beside the share of answers without a claim."),
                   Table(["a − b", "n", "difference in answers with a hallucinated claim",
                          "hallucinated only in a / only in b", "McNemar p", "Holm-adjusted p"],
                         [[f"{p['a']} − {p['b']}", str(p["mcnemar"]["n"]),
                           stats.Interval(**p["difference"]).text(signed=True),
                           f"{p['mcnemar']['a_only']} / {p['mcnemar']['b_only']}", f"{p['mcnemar']['p_value']:.3g}",
                           _holm(stats.McNemar(**p["mcnemar"]))] for p in tested])]
    if small := [f"{p['a']} − {p['b']} (n={p['mcnemar']['n']})" for p in paired if p["too_small"]]:
        blocks.append(f"Too small to compare (fewer than {stats.MIN_COMPARE_N} paired answers): " + "; ".join(small)
                      + ".")
    if faithful:
        blocks += [("RAG faithfulness: claims supported or contradicted by the retrieved chunks, citations that "
                    "point at a retrieved chunk supporting the sentence, answer relevancy (MiniLM similarity to "
                    "the question), and context precision and MRR against derived gold evidence."),
                   Table(["system", "supported by context", "contradicted by context", "citation correctness",
                          "answer relevancy", "context precision", "MRR", "citations"], faithful)]
    return Section("Hallucination: claims", blocks)


CONDITIONS = {
    "scratch": "from-scratch model, asked through its served chat template (as `als-lm chat` asks it)",
    "scratch_base": "from-scratch model, asked raw as a base model: document separator, k-shot, no template",
    "rag": "RAG: the generator with the retrieved chunks",
    "closed_book": "the RAG generator without retrieved chunks",
}


def corpus_sentence(items: list[BenchmarkItem], absent: list[AbsentFact], sources: list[str]) -> str:
    """What the corpus is, and how many key facts it states (counted by coverage.py, not written by hand)."""
    facts = sum(len(i.key_facts) for i in items)
    counted = sum(f.counted for i in items for f in i.key_facts)
    stated = (f"{facts - len(absent)} of the benchmark's {facts} key facts "
              f"({counted - sum(f.counted for f in absent)} of the {counted} counted ones) are stated in it "
              "(services/evaluator/coverage.py)")
    if sources == ["scrape-sample"]:
        return ("The corpus is the bundled sample, which was written together with the benchmark: "
                f"{stated}. On this corpus every system is therefore measured on facts it was given; what it "
                "says is whether a system can give back what it read, not what it knows beyond it (the exposure "
                "buckets below separate the facts by how often the training text shows them).")
    return (f"The corpus comes from {', '.join(sources) or 'unrecorded sources'}: {stated}; facts it does not "
            "state can only be known from elsewhere or made up.")


def _headline_section(systems: dict[str, analysis.SystemData], figures: dict[str, dict], items: list[BenchmarkItem],
                      absent: list[AbsentFact], sources: list[str], seed: int, stored: dict[str, str],
                      findings: list[str]) -> Section:
    """Per system and condition: stored (probe), extractable (strict QA correctness), hallucinated (claims).
    ``stored`` holds the probe's figure for the systems whose model the probe scored; ``findings`` the probe's
    and the extraction arm's answers, under the table."""
    rows, sentences = [], []
    for name, s in systems.items():
        correct = figures[name]["figures"]["correct"]
        claims = analysis.claim_figures(s, seed)
        probed = stored.get(name)
        if claims is None:
            hallucinated, said = "not scored for claims", "its claims were not scored (an older score run)"
        else:
            pooled, none = claims["pooled"]["hallucinated"], claims["per_answer"]["no_claim"]
            hallucinated = pooled.text()
            said = (f"{pct(pooled.estimate)} of its {claims['claims']} claims are contradicted or unsupported and "
                    f"{pct(none.estimate)} of its answers make no claim at all" if claims["claims"] else
                    "none of its answers makes a claim that can be checked")
        rows.append([name, CONDITIONS.get(name, name), probed or "not measured (no probe of this model)",
                     correct.text(), hallucinated])
        sentences.append(f"{name}: {pct(correct.estimate)} of the {correct.n} questions answered strictly correct "
                         f"(every key fact, nothing contradicted); {said}; "
                         + (f"the likelihood probe ranks the true value first on {probed}." if probed
                            else "what it stores was not probed."))
    return Section("Headline: stored, extractable, hallucinated", [
        corpus_sentence(items, absent, sources),
        Table(["system", "condition", "stored (probe accuracy)", "extractable (strictly correct answers)",
               "hallucinated (contradicted or unsupported claims, pooled)"], rows),
        *sentences,
        *findings,
    ])


def _benchmark_section(items: list[BenchmarkItem], absent: list[AbsentFact]) -> Section:
    """What the benchmark can fairly ask: dated items, items the corpus cannot answer, facts it never states."""
    dated = [i for i in items if i.as_of]
    blocks: list = [
        (f"{len(items)} items; {sum(not i.answerable for i in items)} marked unanswerable from the bundled corpus "
        f"({', '.join(i.id for i in items if not i.answerable) or 'none'}). "
        f"{len(absent)} key facts ({sum(f.counted for f in absent)} of them counted) appear nowhere in the "
        "training corpus as written or as an alias, so RAG cannot retrieve them and the from-scratch model never "
        "read them (an upper bound: see docs/evaluation.md).")]
    if dated:
        blocks += ["Items whose truth can change carry the date their reference answer was true:",
                   Table(["item", "as of", "question"], [[i.id, i.as_of.isoformat(), i.question] for i in dated])]
    return Section("The benchmark", blocks)


def _wins_table(rows: list[tuple], a: str, b: str, questions: dict[str, str]) -> Table | str:
    if not rows:
        return "none"
    return Table(["id", "question", a, b], [[q, questions[q], pct(x), pct(y)] for q, x, y in rows[:10]])


def _leakage_section(c: dict) -> Section:
    blocks: list = [
        (f"Word {c['ngram']}-grams of each benchmark question and reference answer looked up in the training "
         f"corpus: mean overlap {pct(c['mean_question_overlap'])} (questions), {pct(c['mean_answer_overlap'])} "
         f"(answers). Items whose answer overlaps at least {pct(c['threshold'])} are flagged as leaked: "
         f"{len(c['leaked'])} — {', '.join(c['leaked']) or 'none'}. Accuracy on leaked items measures recall "
         "of the corpus, not knowledge."),
        Chart("leakage", "Benchmark answer overlap with the corpus",
              charts.histogram("Reference-answer n-gram overlap", [r["answer_overlap"] for r in c["items"]],
                               "share of answer n-grams in the corpus")),
    ]
    if "memorisation" in c:
        m = c["memorisation"]
        blocks += [
            (f"Memorisation: the from-scratch model's answers share at most {m['max_words']} consecutive words with "
             f"the corpus (median {m['median_words']}); {m['verbatim_answers']} answers repeat 13 or more words "
             "verbatim."),
            Table(["id", "words", "longest shared passage"], [[i, str(v["words"]), v["text"]] for i, v in m["top"]]),
        ]
    return Section("Leakage and memorisation", blocks)


def _experiment_sections(experiment: Experiment, systems: dict[str, analysis.SystemData],
                         figures: dict[str, dict]) -> list[Section]:
    r, curves = experiment.result, experiment.curves
    xs = [c["tokens_seen"] for c in curves]
    based = all("base_accuracy" in c for c in curves)
    panels = {
        "accuracy": {"scratch": [c["accuracy"] for c in curves],
                     **({"scratch_base": [c["base_accuracy"] for c in curves]} if based else {})},
        "fabrication rate": {"scratch": [c["fabrication"] for c in curves]},
        "hedging rate": {"scratch": [c["hedged"] for c in curves]},
        "memorised span (words, mean per answer)": {"scratch": [c["memorised_span"] for c in curves]},
    }
    others = [n for n in systems if n not in panels["accuracy"]]
    references = {
        "accuracy": {n: figures[n]["figures"]["accuracy"] for n in others},
        "fabrication rate": {n: figures[n]["figures"]["fabrication"] for n in others},
        "hedging rate": {n: figures[n]["figures"]["hedged"] for n in others},
    }
    base_columns = ["base: graded accuracy", "base: correct (strict)"] if based else []
    table = Table(["checkpoint", "tokens seen", "train loss", "val loss", "graded accuracy", "correct (strict)",
                   *base_columns, "fabrication rate", "hedging rate", "memorised span (mean words)", "longest span",
                   "verbatim answers (13+ words)"],
                  [[c["name"], f"{c['tokens_seen']:,}", _loss(c["train_loss"]), _loss(c["val_loss"]),
                    c["accuracy"].text(), c["correct"].text(),
                    *([c["base_accuracy"].text(), c["base_correct"].text()] if based else []),
                    c["fabrication"].text(), c["hedged"].text(),
                    c["memorised_span"].text(percent=False), str(c["max_span"]), str(c["verbatim_answers"])]
                   for c in curves])
    unigram = f" The unigram baseline's validation loss is {r.unigram_val_loss:.2f}." if r.unigram_val_loss else ""
    learning = Section("Learning curves", [
        (f"The from-scratch model ({r.preset} preset, {r.parameters:,} parameters, train run {r.train_run}) at each "
         "kept checkpoint, exported, served, asked every question and scored like the final model: through "
         "its chat template (scratch) and, where it was asked so, raw as a base model, k-shot (scratch_base, "
         "columns \"base\"). Dashed "
         f"lines: the other systems on the same questions.{unigram} The memorised span is the longest word "
         "sequence an answer shares with the training corpus, averaged over answers (the maximum has no "
         "bootstrap interval, so it is listed without one)."),
        table,
        Chart("learning_curves", "Accuracy, fabrication, hedging and memorised span against tokens seen",
              charts.curves("Learning curves", xs, panels, "tokens seen", references)),
    ])
    exposure = experiment.exposure
    buckets = [b for b in EXPOSURE_BUCKETS if exposure["items"].get(b)]
    exposure_section = Section("Accuracy by fact exposure", [
        ("Each question's bucket is how many training-split documents contain its key facts (the median fact; "
         "validation_only: found only in the validation split; unseen: nowhere in the corpus). Accuracy rising "
         "with exposure is recall of seen facts (Kandpal et al., ICML 2023); answers to unseen facts can only "
         "be known from elsewhere or made up. Buckets: "
         + ", ".join(f"{b} {exposure['items'][b]}" for b in buckets) + "."),
        Table(["exposure", *exposure["accuracy"]],
              [[b, *(_cell(by[b], by[b].n < stats.MIN_COMPARE_N) for by in exposure["accuracy"].values())]
               for b in buckets]),
        TOO_SMALL_NOTE,
        Chart("exposure", "Accuracy by fact exposure, with 95 % intervals",
              charts.grouped_bars("Accuracy by exposure", buckets,
                                  {n: [by[b] for b in buckets] for n, by in exposure["accuracy"].items()},
                                  "accuracy")),
    ])
    return [learning, exposure_section]


def _loss(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
