"""Time to first token and generation speed of the served model, per backend and quantization,
with llama.cpp called directly (llama-cpp-python) as the reference in the same run.

    python benchmarks/bench_serving.py --preset tiny --preset base --threads 2 --out volumes/bench/serving

For each preset a random-weight model (the trainer's GPT class, 16K vocabulary; speed does not
depend on the weights' values) is exported with the exporter's own code to f16, Q8_0, Q5_K_M and
Q4_K_M. Each quantization is then timed on the same prompt (the Modelfile template around
"What is ALS?", ~110 tokens) through: `llamacpp` (in-process, the reference), `ollama` (a real
server started here, REST, streaming) and, for f32 weights only, `direct` (transformers in
PyTorch). Every backend generates exactly --tokens tokens with greedy decoding and no stop
strings; times are client-side (request sent -> first token, first -> last token), the median
of --repeats runs after one warm-up, with --threads threads everywhere. Each run's prompt starts
with its own number, so neither backend can reuse the previous run's KV cache: Ollama's runner
keeps it between requests and would otherwise report a cache hit as its first-token time.

``--users`` measures instead what a user of `als-lm chat` meets (issue 16), for one preset and
quantization: the model created in Ollama exactly as `als-lm export ollama` creates it (the
Modelfile's system prompt, template, sampling and stop), questions sent as plain prompts the
server wraps in that template. For each serving setting (``num_thread``, ``num_batch``,
``num_ctx``) it records the first token of a question that **loads** the model (cold), of the
first question to a loaded model (no reusable prefix), and of the **next** questions (warm: the
system prompt's KV prefix is still in the runner's cache, so only the new question is evaluated),
with generation tokens/s and Ollama's own prompt-evaluation time, beside llama.cpp in-process
with the same prompt, threads, batch, context and sampling (llama-cpp-python reuses the longest
common prefix the same way). Settings are measured in interleaved rounds; medians are reported.

    python benchmarks/bench_serving.py --users --preset base --quant Q5_K_M --out volumes/bench/serving-users
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUANTS = ["f16", "Q8_0", "Q5_K_M", "Q4_K_M"]
VOCAB = 16384


def build(preset: str, work: Path, tokenizer_json: Path, quants: list[str] = QUANTS) -> tuple[dict[str, Path], object]:
    import torch

    from services.exporter.checkpoint import load_checkpoint, read_tokenizer
    from services.exporter.gguf_export import write_gguf
    from services.exporter.quantize import quantize
    from services.trainer.model import GPT, PRESETS, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(**PRESETS[preset], vocab_size=VOCAB, dropout=0.0)
    torch.save({"config": cfg.to_dict(), "model": GPT(cfg).state_dict()}, work / "model.pt")
    shape, sd = load_checkpoint(work / "model.pt")
    tok = read_tokenizer(tokenizer_json, shape)
    files = {"f32": write_gguf(shape, sd, tok, work / "f32.gguf", "f32", "bench")}
    files["f16"] = write_gguf(shape, sd, tok, work / "f16.gguf", "f16", "bench")
    for q in [q for q in quants if q != "f16"]:
        quantize(files["f32"], work / f"{q}.gguf", q, threads=2)
        files[q] = work / f"{q}.gguf"
    return files, (shape, sd, tok.special)


def timed(chunks) -> tuple[float, float, int]:
    """(time to first chunk, tokens/s after it, pieces) of a streaming generator started now."""
    start = time.perf_counter()
    first = last = None
    n = 0
    for _ in chunks:
        now = time.perf_counter()
        first = first if first is not None else now
        last, n = now, n + 1
    return first - start, (n - 1) / (last - first) if n > 1 else 0.0, n


def median_run(fn, prompt: str, repeats: int) -> dict:
    """``fn(prompt)`` once to warm up (load, page cache), then ``repeats`` times on fresh prompts."""
    prompts = [f"{i}. {prompt}" for i in range(repeats + 1)]  # a new first token: no prefix-cache hit
    fn(prompts[0])
    runs = [fn(p) for p in prompts[1:]]
    return {"ttft_ms": statistics.median(r[0] for r in runs) * 1000,
            "tokens_per_s": statistics.median(r[1] for r in runs), "tokens": runs[0][2]}


def bench_llamacpp(path: Path, prompt: str, n: int, threads: int, repeats: int) -> dict:
    from services.exporter import llama

    llm = llama.load(path, n_ctx=0, threads=threads)

    def once(text):
        llm.reset()
        ids = llm.tokenize(text.encode(), add_bos=False)
        # logit_bias on <|eos|> keeps random weights from stopping early; greedy, no stops
        return timed(c for c in llm.create_completion(ids, max_tokens=n, temperature=0, stream=True,
                                                        logit_bias={1: -100.0}))
    result = median_run(once, prompt, repeats)
    llm.close()
    return result


def bench_ollama(client, tag: str, prompt: str, n: int, threads: int, repeats: int, n_ctx: int) -> dict:
    # raw: the prompt is already rendered, exactly as llama.cpp gets it; the context is the model's
    options = {"temperature": 0, "num_predict": n, "num_thread": threads, "num_ctx": n_ctx}

    def once(text):
        return timed(c for c in client.generate(model=tag, prompt=text, raw=True, stream=True, options=options)
                     if c.response or not c.done)
    result = median_run(once, prompt, repeats)
    client.generate(model=tag, prompt="", keep_alive=0)
    return result


def bench_direct(parts, tokenizer_json: Path, prompt: str, n: int, threads: int, repeats: int) -> dict:
    import torch
    from tokenizers import Tokenizer

    from services.exporter.hf import build_model

    torch.set_num_threads(threads)
    shape, sd, special = parts
    model = build_model(shape, sd, special)
    tokenizer = Tokenizer.from_file(str(tokenizer_json))

    @torch.no_grad()
    def gen(text):
        out = model(torch.tensor([tokenizer.encode(text).ids]), use_cache=True)
        for _ in range(n):
            logits = out.logits[0, -1]
            logits[special["eos"]] = float("-inf")
            token = int(logits.argmax())
            yield token
            out = model(torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)

    return median_run(lambda text: timed(gen(text)), prompt, repeats)


# Questions a user might ask in a row; written for this benchmark, not taken from the evaluation set.
QUESTIONS = [
    "What is ALS?", "What genes are associated with ALS?", "How is ALS diagnosed?", "What does riluzole do?",
    "How fast does ALS usually progress?", "What is bulbar-onset ALS?", "Is ALS inherited?",
    "What is the role of TDP-43?", "Which muscles does ALS affect first?", "What is edaravone?",
]
# (num_thread, num_batch, num_ctx); num_thread None = Ollama's own choice (its count of physical cores)
USER_SETTINGS = [(None, 512, 1024), (2, 512, 1024), (1, 512, 1024), (2, 128, 1024), (2, 512, 512)]


def _ollama_ask(client, tag: str, question: str, options: dict) -> dict:
    start = time.perf_counter()
    first = last = final = None
    n = 0
    for chunk in client.generate(model=tag, prompt=question, stream=True, options=options):
        now = time.perf_counter()
        if chunk.response:
            first = first if first is not None else now
            last, n = now, n + 1
        if chunk.done:
            final = chunk
    return {"ttft_ms": (first - start) * 1000, "tokens_per_s": (n - 1) / (last - first) if n > 1 else 0.0,
            "tokens": n, "prompt_eval_ms": (final.prompt_eval_duration or 0) / 1e6,
            "load_ms": (final.load_duration or 0) / 1e6}


def _llamacpp_ask(llm, prompt: str, sampling: dict, n: int) -> dict:
    start = time.perf_counter()
    first = last = None
    count = 0
    for _ in llm.create_completion(prompt, max_tokens=n, stream=True, **sampling):
        now = time.perf_counter()
        first = first if first is not None else now
        last, count = now, count + 1
    return {"ttft_ms": (first - start) * 1000,
            "tokens_per_s": (count - 1) / (last - first) if count > 1 else 0.0, "tokens": count}


def users_round(client, tag: str, gguf: Path, setting: tuple, n: int, cfg, warm_questions: int) -> list[dict]:
    """One setting, both backends: cold (loads), loaded without a reusable prefix, then warm questions."""
    from llama_cpp import Llama

    from services.exporter.settings import render_prompt

    threads, batch, ctx = setting
    s = cfg.sampling
    options = {"num_predict": n, "seed": 0, "num_batch": batch, "num_ctx": ctx,
               **({"num_thread": threads} if threads else {})}
    sampling = {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                "repeat_penalty": s.repeat_penalty, "stop": list(cfg.stop), "seed": 0}
    questions = QUESTIONS[: 2 + warm_questions]
    rows = []

    def record(backend, kind, question, r):
        rows.append({"backend": backend, "num_thread": threads, "num_batch": batch, "num_ctx": ctx,
                     "kind": kind, "question": question, **r})

    client.generate(model=tag, prompt="", keep_alive=0)  # unloaded: the next question starts the runner
    record("ollama", "cold", questions[0], _ollama_ask(client, tag, questions[0], options))
    client.generate(model=tag, prompt="", keep_alive=0)
    client.generate(model=tag, prompt="", options=options)  # loaded, nothing evaluated yet
    record("ollama", "loaded", questions[1], _ollama_ask(client, tag, questions[1], options))
    for q in questions[2:]:
        record("ollama", "warm", q, _ollama_ask(client, tag, q, options))
    client.generate(model=tag, prompt="", keep_alive=0)  # llama.cpp gets the cores to itself

    t0 = time.perf_counter()
    llm = Llama(model_path=str(gguf), n_ctx=ctx, n_batch=batch, n_threads=threads or os.cpu_count(),
                n_threads_batch=threads or os.cpu_count(), verbose=False)
    load_ms = (time.perf_counter() - t0) * 1000
    cold = _llamacpp_ask(llm, render_prompt(cfg.system, questions[0]), sampling, n)
    record("llamacpp", "cold", questions[0], {**cold, "ttft_ms": cold["ttft_ms"] + load_ms, "load_ms": load_ms})
    llm.reset()  # forget the cached tokens: the next prompt is evaluated in full
    record("llamacpp", "loaded", questions[1], _llamacpp_ask(llm, render_prompt(cfg.system, questions[1]), sampling, n))
    for q in questions[2:]:  # no reset: the longest common prefix (the system prompt) is reused
        record("llamacpp", "warm", q, _llamacpp_ask(llm, render_prompt(cfg.system, q), sampling, n))
    llm.close()
    return rows


def users(preset: str, quant: str, tokens: int, rounds: int, warm_questions: int, out: Path,
          settings: list[tuple]) -> None:
    import ollama

    from services.exporter.modelfile import parameters
    from services.exporter.settings import TEMPLATE, ExportConfig
    from shared import servers
    from tests.exporter.conftest import sample_texts, train_tokenizer

    cfg = ExportConfig()
    out.mkdir(parents=True, exist_ok=True)
    results = {"preset": preset, "quant": quant, "tokens": tokens, "cpu": os.cpu_count(),
               "loadavg_start": Path("/proc/loadavg").read_text().split()[:3], "rows": []}
    with tempfile.TemporaryDirectory(dir=out) as tmp, servers.ollama(Path(tmp) / "ollama").start(120) as srv:
        tmp = Path(tmp)
        tokenizer_json = tmp / "tokenizer.json"
        train_tokenizer(sample_texts(), VOCAB).save(str(tokenizer_json))
        files, parts = build(preset, tmp, tokenizer_json, [quant])
        client = ollama.Client(host=srv.base_url, timeout=600)
        tag = f"users-{preset}:{quant.lower()}"
        # exactly what `als-lm export ollama` creates: template, system prompt, Modelfile parameters
        client.create(model=tag, files={files[quant].name: client.create_blob(files[quant])}, template=TEMPLATE,
                      system=cfg.system, parameters=parameters(cfg, parts[0].block_size))
        for r in range(rounds):  # interleaved, so load changes on a shared machine hit every setting alike
            for setting in settings:
                rows = users_round(client, tag, files[quant], setting, tokens, cfg, warm_questions)
                results["rows"] += [{**row, "round": r, "loadavg": os.getloadavg()[0]} for row in rows]
                (out / "serving-users.json").write_text(json.dumps(results, indent=2))  # kept if stopped later
                warm = {b: statistics.median(x["ttft_ms"] for x in rows if x["backend"] == b and x["kind"] == "warm")
                        for b in ("ollama", "llamacpp")}
                click.echo(f"round {r} {setting}: warm first token ollama {warm['ollama']:.0f} ms, "
                           f"llama.cpp {warm['llamacpp']:.0f} ms; load {os.getloadavg()[0]:.1f}", err=True)
    results["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    (out / "serving-users.json").write_text(json.dumps(results, indent=2))
    lines = [("| num_thread | num_batch | num_ctx | backend | cold first token (ms) | loaded, no prefix (ms) | "
              "warm first token (ms) | tokens/s (warm) | server's prompt evaluation, warm (ms) |"),
             "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for threads, batch, ctx in settings:
        for backend in ("ollama", "llamacpp"):
            sel = [x for x in results["rows"] if x["backend"] == backend and
                   (x["num_thread"], x["num_batch"], x["num_ctx"]) == (threads, batch, ctx)]

            def med(kind, key, sel=sel):
                vals = [x[key] for x in sel if x["kind"] == kind and x.get(key) is not None]
                return statistics.median(vals) if vals else None
            evaluated = med("warm", "prompt_eval_ms")
            lines.append(f"| {threads or 'default'} | {batch} | {ctx} | {backend} | {med('cold', 'ttft_ms'):.0f} | "
                         f"{med('loaded', 'ttft_ms'):.0f} | {med('warm', 'ttft_ms'):.0f} | "
                         f"{med('warm', 'tokens_per_s'):.1f} | {'' if evaluated is None else f'{evaluated:.0f}'} |")
    (out / "serving-users.md").write_text("\n".join(lines) + "\n")
    click.echo("\n".join(lines))


@click.command()
@click.option("--preset", "presets", multiple=True, default=["tiny"], help="Trainer presets (tiny, base, ...).")
@click.option("--tokens", default=64, help="Tokens generated per run.")
@click.option("--repeats", default=3)
@click.option("--threads", default=2)
@click.option("--out", type=click.Path(path_type=Path), default=Path("volumes/bench/serving"))
@click.option("--users", "users_view", is_flag=True, help="First token as users meet it (see above).")
@click.option("--quant", "user_quant", default="Q5_K_M", show_default=True, help="--users: the quantization.")
@click.option("--rounds", default=2, show_default=True, help="--users: interleaved rounds over the settings.")
@click.option("--warm-questions", default=4, show_default=True, help="--users: warm questions a round.")
@click.option("--setting", "user_settings", multiple=True, metavar="THREADS,BATCH,CTX",
              help="--users: a serving setting to measure (THREADS 0 = Ollama's choice) [default: a grid]")
def main(presets, tokens, repeats, threads, out, users_view, user_quant, rounds, warm_questions, user_settings):
    if users_view:
        settings = [(int(t) or None, int(b), int(c)) for t, b, c in (x.split(",") for x in user_settings)]
        users(presets[0], user_quant, tokens, rounds, warm_questions, out, settings or USER_SETTINGS)
        return
    import ollama

    from services.exporter.settings import SYSTEM_PROMPT, TEMPLATE, render_prompt
    from shared import servers
    from tests.exporter.conftest import sample_texts, train_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    prompt = render_prompt(SYSTEM_PROMPT, "What is ALS?")
    results = {"tokens": tokens, "threads": threads, "cpu": os.cpu_count(), "load_avg_start": os.getloadavg(),
               "rows": []}
    with tempfile.TemporaryDirectory(dir=out) as tmp, servers.ollama(Path(tmp) / "ollama").start(120) as srv:
        tmp = Path(tmp)
        tokenizer_json = tmp / "tokenizer.json"
        train_tokenizer(sample_texts(), VOCAB).save(str(tokenizer_json))
        client = ollama.Client(host=srv.base_url, timeout=600)
        for preset in presets:
            work = tmp / preset
            work.mkdir()
            t = time.perf_counter()
            files, parts = build(preset, work, tokenizer_json)
            click.echo(f"{preset}: exported in {time.perf_counter() - t:.0f}s", err=True)
            for quant in QUANTS:
                ref = bench_llamacpp(files[quant], prompt, tokens, threads, repeats)
                tag = f"bench-{preset}:{quant.lower()}"
                client.create(model=tag, files={files[quant].name: client.create_blob(files[quant])},
                              template=TEMPLATE)
                oll = bench_ollama(client, tag, prompt, tokens, threads, repeats, parts[0].block_size)
                overhead = 1 - oll["tokens_per_s"] / ref["tokens_per_s"] if ref["tokens_per_s"] else None
                for backend, r in (("llamacpp", ref), ("ollama", oll)):
                    results["rows"].append({"preset": preset, "quant": quant, "backend": backend,
                                            "size_mib": files[quant].stat().st_size / 2**20, **r,
                                            "ollama_overhead": overhead if backend == "ollama" else None})
                click.echo(f"{preset} {quant}: llamacpp {ref['ttft_ms']:.0f} ms {ref['tokens_per_s']:.1f} tok/s | "
                           f"ollama {oll['ttft_ms']:.0f} ms {oll['tokens_per_s']:.1f} tok/s", err=True)
            d = bench_direct(parts, tokenizer_json, prompt, tokens, threads, repeats)
            results["rows"].append({"preset": preset, "quant": "f32", "backend": "direct",
                                    "size_mib": files["f32"].stat().st_size / 2**20, **d, "ollama_overhead": None})
            click.echo(f"{preset} f32 direct: {d['ttft_ms']:.0f} ms {d['tokens_per_s']:.1f} tok/s", err=True)
    results["load_avg_end"] = os.getloadavg()
    (out / "serving.json").write_text(json.dumps(results, indent=2))
    lines = ["| Preset | Quant | Backend | Size (MiB) | First token (ms) | Tokens/s | Ollama overhead |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in results["rows"]:
        ov = f"{r['ollama_overhead'] * 100:+.0f} %" if r["ollama_overhead"] is not None else ""
        lines.append(f"| {r['preset']} | {r['quant']} | {r['backend']} | {r['size_mib']:.1f} | {r['ttft_ms']:.0f} | "
                     f"{r['tokens_per_s']:.1f} | {ov} |")
    (out / "serving.md").write_text("\n".join(lines) + "\n")
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
