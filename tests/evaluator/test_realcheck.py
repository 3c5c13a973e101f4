"""The held-out validation on real outputs: the settled labels, the agreement figures and their intervals."""

import json

import click
import pytest
from click.testing import CliRunner

from services.evaluator.inputs import load_benchmark
from services.evaluator.scoring import realcheck
from services.evaluator.scoring.realcheck import (
    AnswerLabel,
    AnswerPair,
    ClaimLabel,
    ClaimPair,
    Label,
    Pair,
    Stratum,
)
from services.evaluator.settings import BENCHMARK
from shared import runs
from shared.schemas.eval import ClaimJudgement, FactMatch, ItemScore, Response, ScoreFile
from shared.schemas.experiment import CheckpointResult, ExperimentResult
from shared.store import LocalStore

FACTS = [{"text": "glutamate release"}, {"text": "sodium channels"}]


def _pair(n: int, system: str = "rag") -> Pair:
    return Pair(pair_id=f"{system}:q{n}:0", system=system, source_run="eval-rag/x", item_id=f"q{n}",
                question="How does riluzole work?", facts=FACTS, fact_index=n % 2, response=f"answer {n}")


def _labels(verdicts: list[str], pairs: list[Pair]) -> list[Label]:
    return [Label(pair_id=p.pair_id, verdict=v) for p, v in zip(pairs, verdicts)]


def test_settled_label_is_the_readers_shared_verdict_or_the_adjudicators():
    pairs = [_pair(0), _pair(1)]
    first = _labels(["supported", "absent"], pairs)
    second = _labels(["supported", "contradicted"], pairs)
    adjudicated = [Label(pair_id=pairs[1].pair_id, verdict="contradicted")]
    assert realcheck.settled(pairs, first, second, adjudicated) == {
        pairs[0].pair_id: "supported", pairs[1].pair_id: "contradicted"}


def test_a_disagreement_left_unadjudicated_is_refused_by_name():
    pairs = [_pair(0)]
    with pytest.raises(click.ClickException, match="q0.*not adjudicated"):
        realcheck.settled(pairs, _labels(["supported"], pairs), _labels(["absent"], pairs), [])


def test_report_counts_precision_and_recall_per_verdict():
    pairs = [_pair(n) for n in range(12)]
    gold = ["supported"] * 4 + ["absent"] * 6 + ["contradicted"] * 2
    labels = _labels(gold, pairs)
    # The scorer misses one supported fact (says absent) and calls one absent fact contradicted.
    said = dict(zip((p.pair_id for p in pairs), ["absent"] + ["supported"] * 3 + ["contradicted"] + ["absent"] * 5
                    + ["contradicted"] * 2))
    text = realcheck.report_text(pairs, labels, labels, [], said)
    assert "Readers agree on 100.0 %" in text
    assert "Scorer agrees with the settled label on 83.3 %" in text  # 10 of 12
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()
            if line.startswith("| ") and line.count("|") == 4}  # the precision/recall table
    assert "100.0 %" in rows["supported"].split(" | ")[1] and "(n=3)" in rows["supported"]  # precision 3/3
    assert "75.0 %" in rows["supported"].split(" | ")[2]  # recall 3/4
    assert "66.7 %" in rows["contradicted"].split(" | ")[1]  # 2 of 3 contradicted verdicts were right


def test_proportion_of_nothing_is_undefined_not_zero():
    assert realcheck.proportion(0, 0).estimate is None
    interval = realcheck.proportion(3, 4)
    assert interval.low < 0.75 < interval.high


def test_sample_draws_one_fact_per_item_and_system_reproducibly(tmp_path, monkeypatch):
    items = json.loads(realcheck.BENCHMARK.read_text())[:20]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"id": i["id"], "response": "text"}) + "\n" for i in items))
    specs = {"rag": ("eval-rag/a", path), "closed_book": ("eval-closed_book/b", path)}
    first = realcheck.sample_pairs(specs, per_system=8, seed=7)
    assert first == realcheck.sample_pairs(specs, per_system=8, seed=7)
    assert len(first) == 16
    for system in ("rag", "closed_book"):
        ids = [p.item_id for p in first if p.system == system]
        assert len(ids) == len(set(ids)) == 8


def test_the_committed_real_output_set_is_fully_labelled_by_two_readers_and_settled():
    data = realcheck.DATA
    pairs = realcheck._read(data / "pairs.jsonl", Pair)
    first, second = (realcheck._read(data / f"labels-{n}.jsonl", Label) for n in (1, 2))
    adjudicated = realcheck._read(data / "adjudicated.jsonl", Label)
    assert len(pairs) >= 150 and len({p.pair_id for p in pairs}) == len(pairs)
    assert [lab.pair_id for lab in first] == [lab.pair_id for lab in second] == [p.pair_id for p in pairs]
    settled = realcheck.settled(pairs, first, second, adjudicated)
    assert set(settled) == {p.pair_id for p in pairs}
    assert all(p.fact.counted for p in pairs)  # only scored facts are validated


def test_scorer_agreement_floor_on_the_real_outputs():
    """Issue 25 item 6: measured once after the issue-24 rules froze (171/180 = 95.0 %, supported recall
    15/15; docs/evaluation.md); the floors sit a case or two below. An all-"absent" scorer agrees on the
    157 absent pairs only (87.2 %) and finds no supported fact, so it fails both (checked here)."""
    data = realcheck.DATA
    pairs = realcheck._read(data / "pairs.jsonl", Pair)
    first, second = (realcheck._read(data / f"labels-{n}.jsonl", Label) for n in (1, 2))
    gold = realcheck.settled(pairs, first, second, realcheck._read(data / "adjudicated.jsonl", Label))

    def floors_met(said: dict[str, str]) -> bool:
        agreement = sum(said[i] == gold[i] for i in gold) / len(gold)
        true = [i for i in gold if gold[i] == "supported"]
        return agreement >= 0.93 and sum(said[i] == "supported" for i in true) / len(true) >= 0.93

    assert floors_met(realcheck.judge(pairs))
    assert not floors_met(dict.fromkeys(gold, "absent"))


def test_weighted_agreement_weights_each_stratum_by_its_population():
    strata = [realcheck.Stratum(system="rag", verdict="absent", population=90, pair_ids=["a1", "a2"]),
              realcheck.Stratum(system="rag", verdict="supported", population=10, pair_ids=["s1", "s2"])]
    gold = {"a1": "absent", "a2": "absent", "s1": "absent", "s2": "absent"}
    said = {"a1": "absent", "a2": "absent", "s1": "supported", "s2": "supported"}
    interval = realcheck.weighted_agreement(strata, gold, said, seed=1)
    assert interval.estimate == pytest.approx(0.9) and interval.n == 4  # the sample's own share is 0.5


def _scores(items, verdict_of, claims_of=lambda item_id: [], kind_of=lambda item_id: "answer") -> ScoreFile:
    return ScoreFile(summary={}, items=[ItemScore(
        id=item.id, category=item.category, facts_present=[verdict_of(item.id, i) == "supported" for i in
                                                           range(len(item.key_facts))],
        accuracy=0.0, fabricated_entities=[], hedging={"refusal": kind_of(item.id) == "refusal"},
        non_answer=kind_of(item.id) == "non_answer", claims=claims_of(item.id),
        facts=[FactMatch(fact=f.text, present=verdict_of(item.id, i) == "supported", verdict=verdict_of(item.id, i),
                         counted=f.counted) for i, f in enumerate(item.key_facts)]) for item in items])


def test_sample_by_verdict_draws_each_stratum_from_distinct_items_and_counts_its_population():
    items = load_benchmark(BENCHMARK)[:30]

    def verdict_of(item_id: str, index: int) -> str:
        return "supported" if index == 0 else "absent"

    responses = [Response(id=i.id, system="rag", model="m", response=f"about {i.id}")
                 for i in items]
    pairs, strata = realcheck.sample_by_verdict({"rag": ("eval-rag/x", responses, _scores(items, verdict_of))},
                                                per_stratum=5, seed=3)
    by = {s.verdict: s for s in strata}
    counted_first = sum(i.key_facts[0].counted for i in items)
    assert by["supported"].population == counted_first and len(by["supported"].pair_ids) == 5
    assert by["contradicted"].population == 0 and by["contradicted"].pair_ids == []
    absent = [p for p in pairs if p.pair_id in by["absent"].pair_ids]
    assert len({p.item_id for p in absent}) == len(absent) == 5, "distinct items within a stratum"
    assert all(p.response == f"about {p.item_id}" and p.fact.counted for p in pairs)
    assert [p.pair_id for p in pairs] != by["supported"].pair_ids + by["absent"].pair_ids, "shuffled"


def test_a_stratified_set_reports_its_population_weighted_agreement_and_each_strata_precision():
    pairs = [_pair(n) for n in range(4)]
    ids = [p.pair_id for p in pairs]
    strata = [realcheck.Stratum(system="rag", verdict="absent", population=90, pair_ids=ids[:2]),
              realcheck.Stratum(system="rag", verdict="supported", population=10, pair_ids=ids[2:])]
    labels = _labels(["absent", "absent", "supported", "absent"], pairs)
    said = dict(zip(ids, ["absent", "absent", "supported", "supported"]))
    text = realcheck.report_text(pairs, labels, labels, [], said, strata=strata)
    # 90 % of the pairs are in a stratum the scorer gets right, 10 % in one it gets half right
    assert "Over all 100 pairs the strata were drawn from, the scorer agrees with the settled label on 95.0 %" in text
    assert "| rag | supported | 10 | 2 | 50.0 %" in text


def test_scorer_floors_on_the_experiment_set_stratified_by_verdict():
    """Issue 24, real answers: measured once after the set was labelled (weighted agreement 91.0 %, 30 of the 32
    contradicted facts found; docs/evaluation.md); the floors sit a case or two below. An all-"absent" scorer
    keeps a high weighted agreement (absent strata hold most pairs) but finds no contradiction: it fails."""
    data = realcheck.DATA / "experiment-20261207"
    pairs = realcheck._read(data / "pairs.jsonl", Pair)
    strata = realcheck._read(data / "strata.jsonl", realcheck.Stratum)
    first, second = (realcheck._read(data / f"labels-{n}.jsonl", Label) for n in (1, 2))
    gold = realcheck.settled(pairs, first, second, [])
    assert sorted(i for s in strata for i in s.pair_ids) == sorted(gold), "every pair in exactly one stratum"

    def floors_met(said: dict[str, str]) -> bool:
        contradicted = [i for i in gold if gold[i] == "contradicted"]
        found = sum(said[i] == "contradicted" for i in contradicted) / len(contradicted)
        return realcheck.weighted_agreement(strata, gold, said, seed=0).estimate >= 0.89 and found >= 0.87

    assert floors_met(realcheck.judge(pairs))
    assert not floors_met(dict.fromkeys(gold, "absent"))


@pytest.mark.parametrize("command", ["sample-verdicts", "sample-claims", "sample-answers"])
def test_a_draw_names_a_store_without_an_experiment(tmp_path, command):
    result = CliRunner().invoke(realcheck.main, [command, "--set", "never-written", "--store", str(tmp_path)])
    assert result.exit_code != 0 and "holds no experiment run: run `make experiment` first" in result.output
    assert not (realcheck.DATA / "never-written").exists()


def test_report_names_an_unknown_set_and_the_sets_there_are():
    result = CliRunner().invoke(realcheck.main, ["report", "--set", "never-written"])
    assert result.exit_code != 0 and "no set 'never-written'" in result.output
    assert "experiment-20261207" in result.output


def _claims(n: int) -> list[ClaimJudgement]:
    """Answer n's claims: two supported, one unverifiable, and contradicted ones in the first three answers (four in
    the first), so the contradicted stratum holds six claims of three answers."""
    def claim(text: str, verdict: str) -> ClaimJudgement:
        if verdict == "unverifiable":
            return ClaimJudgement(text=text, verdict=verdict)
        return ClaimJudgement(text=text, verdict=verdict, rule="exact", source="reference", evidence=f"evidence of {text}")

    contradicted = {0: 4, 1: 1, 2: 1}.get(n, 0)
    return ([claim(f"supported {n}.{k}", "supported") for k in range(2)] + [claim(f"unverifiable {n}", "unverifiable")]
            + [claim(f"contradicted {n}.{k}", "contradicted") for k in range(contradicted)])


def _kind(n: int) -> str:
    return "non_answer" if n < 2 else "refusal" if n < 5 else "answer"


def _answers(systems=("rag",)):
    items = load_benchmark(BENCHMARK)[:30]
    order = {item.id: n for n, item in enumerate(items)}
    return {system: (f"eval-{system}/x", [Response(id=i.id, system=system, model="m", response=f"{system} on {i.id}")
                                          for i in items],
                     _scores(items, lambda item_id, index: "absent", lambda item_id: _claims(order[item_id]),
                             lambda item_id: _kind(order[item_id]))) for system in systems}


def test_sample_claims_draws_supported_and_contradicted_claims_from_distinct_answers_first():
    for seed in range(5):  # a draw blind to answers covers all three answers in 1 of 5 seeds
        pairs, strata = realcheck.sample_claims(_answers(), per_stratum=3, seed=seed)
        by = {s.verdict: s for s in strata}
        contradicted = [p for p in pairs if p.pair_id in by["contradicted"].pair_ids]
        assert len(contradicted) == 3 and len({p.item_id for p in contradicted}) == 3, "one claim of each answer first"
    assert set(by) == {"supported", "contradicted"} and {s.kind for s in strata} == {"claims"}
    assert by["supported"].population == 60 and by["contradicted"].population == 6  # unverifiable ones not counted
    assert len({p.item_id for p in pairs if p.pair_id in by["supported"].pair_ids}) == 3
    assert all(p.claim.startswith("contradicted") and p.evidence == f"evidence of {p.claim}" for p in contradicted)
    assert not any(p.claim.startswith("unverifiable") for p in pairs)
    assert all(p.response == f"rag on {p.item_id}" and p.source == "reference" for p in pairs)

    filled, strata = realcheck.sample_claims(_answers(), per_stratum=5, seed=5)
    drawn = {s.verdict: s.pair_ids for s in strata}
    assert len(drawn["contradicted"]) == 5, "more claims of the same answers when there are too few answers"
    assert filled == realcheck.sample_claims(_answers(), per_stratum=5, seed=5)[0]


def test_sample_answers_stratifies_by_the_scorers_kind_of_answer():
    pairs, strata = realcheck.sample_answers(_answers(("rag", "closed_book")), per_stratum=4, seed=5)
    by = {(s.system, s.verdict): s for s in strata}
    assert {k: (s.population, len(s.pair_ids)) for k, s in by.items()} == {
        (system, kind): counts for system in ("rag", "closed_book")
        for kind, counts in (("answer", (25, 4)), ("refusal", (3, 3)), ("non_answer", (2, 2)))}
    items = [i.id for i in load_benchmark(BENCHMARK)[:30]]
    assert {p.item_id for p in pairs if p.pair_id in by[("rag", "refusal")].pair_ids} == set(items[2:5])
    assert [p.pair_id for p in pairs] != [i for s in strata for i in s.pair_ids], "shuffled"


def _publish(store, stage: str, files: dict[str, str], metrics=None):
    writer = runs.RunWriter(store, stage, {"stage": stage}, [])
    for name, text in files.items():
        writer.put_bytes(name, text.encode())
    writer.metrics = metrics or {}
    return writer.publish()


@pytest.fixture
def experiment_store(tmp_path, monkeypatch):
    """A store whose latest experiment names the rag and closed_book score runs of _answers; sets are written
    under tmp_path/real_outputs."""
    store = LocalStore(tmp_path / "store")
    systems = {}
    for system, (_, responses, scores) in _answers(("rag", "closed_book")).items():
        asked = _publish(store, f"eval-{system}", {"responses.jsonl": "".join(r.model_dump_json() + "\n"
                                                                               for r in responses)})
        systems[system] = _publish(store, f"score-{system}", {"scores.json": scores.model_dump_json()},
                                   {"eval_run": asked.run}).run
    checkpoint = CheckpointResult(name="step-000001", step=1, tokens_seen=1, export_run="export/x",
                                  serve_run="serve/x", eval_run="eval-scratch/x", score_run="score-scratch/x")
    _publish(store, "experiment", {"experiment.json": ExperimentResult(
        preset="tiny", parameters=1, train_run="train/x", checkpoints=[checkpoint], systems=systems,
        exposure=[]).model_dump_json()})
    monkeypatch.setattr(realcheck, "DATA", tmp_path / "real_outputs")
    return tmp_path / "store"


def test_sample_claims_writes_a_set_without_the_scorers_verdicts_and_never_over_one(experiment_store):
    args = ["sample-claims", "--set", "claims", "--store", str(experiment_store), "--per-stratum", "3"]
    result = CliRunner().invoke(realcheck.main, args)
    assert result.exit_code == 0, result.output
    folder = realcheck.DATA / "claims"
    pairs = [json.loads(line) for line in (folder / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 12 and set(pairs[0]) == set(ClaimPair.model_fields)
    assert not {"verdict", "rule", "similarity"} & set(pairs[0]), "a reader must not see what the scorer said"
    strata = realcheck._read(folder / "strata.jsonl", Stratum)
    assert {(s.system, s.verdict, s.population) for s in strata} == {
        (system, verdict, population) for system in ("closed_book", "rag")
        for verdict, population in (("supported", 60), ("contradicted", 6))}
    assert sorted(i for s in strata for i in s.pair_ids) == sorted(p["pair_id"] for p in pairs)

    written = (folder / "pairs.jsonl").read_text()
    again = CliRunner().invoke(realcheck.main, args[:-2] + ["--per-stratum", "1"])
    assert again.exit_code != 0 and "exists; its pairs may be labelled already" in again.output
    assert (folder / "pairs.jsonl").read_text() == written
    assert sorted(p.name for p in realcheck.DATA.iterdir()) == ["claims"], "no partial folder left behind"


def test_sample_answers_writes_answer_pairs_of_the_experiments_systems(experiment_store):
    result = CliRunner().invoke(realcheck.main, ["sample-answers", "--set", "answers", "--store",
                                                 str(experiment_store), "--per-stratum", "2"])
    assert result.exit_code == 0, result.output
    pairs = realcheck._read(realcheck.DATA / "answers" / "pairs.jsonl", AnswerPair)
    assert len(pairs) == 12 and {p.system for p in pairs} == {"rag", "closed_book"}
    assert all(p.response == f"{p.system} on {p.item_id}" for p in pairs)


def _claim_pair(pair_id: str) -> ClaimPair:
    system = pair_id.split(":")[0]
    return ClaimPair(pair_id=pair_id, system=system, source_run=f"eval-{system}/x", item_id=pair_id, question="q",
                     response="r", claim="c", evidence="e", source="reference")


def test_claims_report_gives_precision_per_stratum_pooled_and_weighted_by_population():
    strata = [Stratum(kind="claims", system="rag", verdict="supported", population=100,
                      pair_ids=["rag:1", "rag:2", "rag:3", "rag:4"]),
              Stratum(kind="claims", system="rag", verdict="contradicted", population=10, pair_ids=["rag:5", "rag:6"]),
              Stratum(kind="claims", system="closed_book", verdict="supported", population=20,
                      pair_ids=["closed_book:1", "closed_book:2"]),
              Stratum(kind="claims", system="closed_book", verdict="contradicted", population=0, pair_ids=[])]
    pairs = [_claim_pair(i) for s in strata for i in s.pair_ids]
    gold = ["supported", "supported", "supported", "neither", "contradicted", "neither", "supported", "supported"]
    first = [ClaimLabel(pair_id=p.pair_id, verdict=v) for p, v in zip(pairs, gold)]
    second = [lab.model_copy(update={"verdict": "contradicted"}) if lab.pair_id == "rag:4" else lab for lab in first]
    text = realcheck.stratified_report("claims", pairs, first, second, [ClaimLabel(pair_id="rag:4", verdict="neither")],
                                       strata)
    assert "Settled labels: supported 5, contradicted 1, neither 2." in text
    assert "Readers agree on 87.5 %" in text  # 7 of 8
    assert "| rag | supported | 100 | 4 | 75.0 %" in text and "| closed_book | supported | 20 | 2 | 100.0 %" in text
    # supported: 5 of the 6 drawn; over the population (100 * 3/4 + 20 * 2/2) / 120 = 79.2 %
    assert "| supported | 83.3 % [35.9, 99.6] (n=6) | 79.2 % [" in text
    assert "| contradicted | 50.0 % [1.3, 98.7] (n=2) | 50.0 % [" in text
    assert "Recall is not estimated" in text


def test_answers_report_gives_precision_and_recall_weighted_by_population():
    strata = [Stratum(kind="answers", system="rag", verdict="answer", population=90, pair_ids=["a1", "a2", "a3", "a4"]),
              Stratum(kind="answers", system="rag", verdict="refusal", population=5, pair_ids=["f1", "f2"]),
              Stratum(kind="answers", system="rag", verdict="non_answer", population=5, pair_ids=["n1"])]
    pairs = [AnswerPair(pair_id=i, system="rag", source_run="eval-rag/x", item_id=i, question="q", response="r")
             for s in strata for i in s.pair_ids]
    gold = ["answer", "answer", "answer", "refusal", "refusal", "answer", "non_answer"]
    labels = [AnswerLabel(pair_id=p.pair_id, verdict=v) for p, v in zip(pairs, gold)]
    text = realcheck.stratified_report("answers", pairs, labels, labels, [], strata)
    assert "| answer | 75.0 % [19.4, 99.4] (n=4) | 75.0 % [" in text
    assert "| refusal | 50.0 % [1.3, 98.7] (n=2) | 50.0 % [" in text
    # refusals: 5 * 1/2 found of 90 * 1/4 + 5 * 1/2 in all = 2.5 / 25; non-answers: all 5 * 1/1 found
    assert "- Recall of refusal, weighted by population: 10.0 % [" in text
    assert "- Recall of non_answer, weighted by population: 100.0 % [" in text


def test_recall_is_undefined_where_the_strata_cannot_show_it():
    strata = [Stratum(kind="answers", system="rag", verdict="answer", population=90, pair_ids=["a1"]),
              Stratum(kind="answers", system="rag", verdict="refusal", population=5, pair_ids=[])]
    assert "was not drawn" in realcheck.weighted_recall(strata, {"a1": "answer"}, "refusal", seed=0).text()
    assert "no pair is settled as refusal" in realcheck.weighted_recall(
        strata[:1], {"a1": "answer"}, "refusal", seed=0).text()


def test_report_reads_a_claims_set_by_its_kind_and_names_missing_labels(tmp_path, monkeypatch):
    monkeypatch.setattr(realcheck, "DATA", tmp_path)
    folder = tmp_path / "claims"
    folder.mkdir()
    pairs = [_claim_pair("rag:1"), _claim_pair("rag:2")]
    (folder / "pairs.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in pairs))
    (folder / "strata.jsonl").write_text(Stratum(kind="claims", system="rag", verdict="contradicted", population=2,
                                                 pair_ids=["rag:1", "rag:2"]).model_dump_json() + "\n")
    result = CliRunner().invoke(realcheck.main, ["report", "--set", "claims"])
    assert result.exit_code != 0 and "labels-1.jsonl or labels-2.jsonl: the set is not labelled yet" in result.output
    for n in (1, 2):
        (folder / f"labels-{n}.jsonl").write_text("".join(
            ClaimLabel(pair_id=p.pair_id, verdict=v).model_dump_json() + "\n"
            for p, v in zip(pairs, ["contradicted", "neither"])))
    result = CliRunner().invoke(realcheck.main, ["report", "--set", "claims"])
    assert result.exit_code == 0, result.output
    assert "| rag | contradicted | 2 | 2 | 50.0 %" in result.output
