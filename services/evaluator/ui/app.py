"""The Gradio Blocks app: five pages wired to the handlers, with deliberate queue and concurrency limits.

Chat and Compare share one concurrency group of ``ui.concurrency_limit`` workers: each worker only
waits on Ollama, which schedules the generations itself, so 20 users get 20 open streams while the
queue holds ``ui.queue_size`` more and refuses beyond that instead of piling up memory.
"""

from __future__ import annotations

import functools
import logging

import gradio as gr

from services.evaluator.inputs import load_benchmark
from services.evaluator.ui import benchmark, handlers, highlight, probe, review, training
from services.evaluator.ui.backends import RAG, SCRATCH, Backends
from services.evaluator.ui.scorer import AnswerScorer
from services.evaluator.ui.settings import UISettings
from shared.schemas.eval import SYSTEMS, categories_of
from shared.store import ArtifactStore, open_store

log = logging.getLogger(__name__)

GENERATE = "generate"  # the concurrency group of every event that asks a model
MAX_LINES = 8  # question boxes: lines=1 makes Enter send; Shift+Enter adds lines up to this height


def build(settings: UISettings, store: ArtifactStore) -> gr.Blocks:
    cfg = settings.ui
    backends = Backends(settings, store)
    scorer = AnswerScorer(settings, store)
    items = load_benchmark(settings.eval.benchmark)
    by_question = handlers.index_items(items)
    cache = settings.work_dir / "ui"
    limits = {"concurrency_limit": cfg.concurrency_limit, "concurrency_id": GENERATE}

    with gr.Blocks(title="ALS-LM evaluator") as demo:
        gr.Markdown("## ALS-LM evaluator: a from-scratch model against a RAG baseline")
        gr.Markdown(handlers.DISCLAIMER, elem_id="disclaimer")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        conversation = gr.Chatbot(label="Conversation", height=380, elem_id="chat-conversation")
                        question = gr.Textbox(label="Question (Enter sends, Shift+Enter adds a line)",
                                              placeholder="What is the mechanism of riluzole?",
                                              lines=1, max_lines=MAX_LINES, elem_id="chat-question")
                        with gr.Row():
                            ask = gr.Button("Ask", variant="primary", elem_id="chat-ask")
                            clear = gr.Button("Clear")
                        status = gr.Markdown(elem_id="chat-status")
                    with gr.Column(scale=1):
                        system = gr.Radio([("From-scratch model", SCRATCH), ("RAG baseline", RAG)], value=SCRATCH,
                                          label="Backend", elem_id="chat-backend")
                        with gr.Accordion("Generation settings", open=True):
                            temperature = gr.Slider(0.0, 2.0, value=cfg.temperature, step=0.05, label="temperature")
                            top_k = gr.Slider(0, 200, value=cfg.top_k, step=1, label="top_k")
                            top_p = gr.Slider(0.05, 1.0, value=cfg.top_p, step=0.05, label="top_p")
                            max_tokens = gr.Slider(1, 1024, value=cfg.max_tokens, step=1, label="max tokens")
                sources = gr.Markdown(label="Retrieved chunks", elem_id="chat-sources")
                chat_inputs = [question, system, temperature, top_k, top_p, max_tokens, conversation]
                chat_fn = functools.partial(handlers.chat, backends, cfg.max_question_chars)
                gr.on([ask.click, question.submit], chat_fn, chat_inputs, [conversation, sources, status],
                      api_name="chat", **limits)
                clear.click(lambda: ([], "", ""), None, [conversation, sources, status], api_name=False)

            with gr.Tab("Compare", id="compare"):
                with gr.Row():
                    pick = gr.Dropdown([(f"{i.id}: {i.question}", i.question) for i in items], value=None,
                                       label="Benchmark question (or type your own below)", elem_id="compare-pick")
                c_question = gr.Textbox(label="Question (Enter sends, Shift+Enter adds a line)", lines=1,
                                        max_lines=MAX_LINES, elem_id="compare-question")
                c_ask = gr.Button("Compare", variant="primary", elem_id="compare-ask")
                c_status = gr.Markdown(elem_id="compare-status")
                gr.HTML(highlight.legend_html())
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("### From-scratch model")
                        s_answer = gr.HTML(elem_id="compare-scratch")
                        s_facts = gr.HTML(elem_id="compare-scratch-facts")
                    with gr.Column():
                        gr.Markdown("### RAG baseline")
                        r_answer = gr.HTML(elem_id="compare-rag")
                        r_facts = gr.HTML(elem_id="compare-rag-facts")
                with gr.Accordion("RAG's retrieved chunks", open=False):
                    c_sources = gr.Markdown(elem_id="compare-sources")
                pick.change(lambda q: q, pick, c_question, api_name=False)
                compare_fn = functools.partial(handlers.compare, backends, scorer, by_question,
                                               cfg.max_question_chars)
                gr.on([c_ask.click, c_question.submit], compare_fn, c_question,
                      [s_answer, s_facts, r_answer, r_facts, c_sources, c_status], api_name="compare", **limits)

            with gr.Tab("Benchmark", id="benchmark"):
                evaluation = gr.State()
                with gr.Row():
                    load = gr.Button("Load the latest scored evaluation", variant="primary", elem_id="bench-load")
                    f_system = gr.Dropdown([benchmark.ALL, *SYSTEMS], value=benchmark.ALL, label="System")
                    f_category = gr.Dropdown([benchmark.ALL, *categories_of(i.category for i in items)],
                                             value=benchmark.ALL,
                                             label="Category")
                    f_mode = gr.Dropdown(benchmark.FAILURE_CHOICES, value=benchmark.ALL, label="Failure mode")
                with gr.Row():
                    r_system = gr.Dropdown(list(SYSTEMS), value=RAG, label="Run the benchmark for",
                                           elem_id="bench-run-system")
                    r_limit = gr.Number(value=0, precision=0, minimum=0, label="Questions (0 = all)",
                                        elem_id="bench-run-limit")
                    run = gr.Button("Run and score", elem_id="bench-run")
                b_status = gr.Markdown(elem_id="bench-status")
                b_figures = gr.Markdown(elem_id="bench-figures")
                table = gr.Dataframe(headers=benchmark.COLUMNS, interactive=False, wrap=True, max_height=420,
                                     elem_id="bench-table")
                gr.Markdown("Select a row to see its answer with the key facts marked.")
                with gr.Row():
                    b_answer = gr.HTML(elem_id="bench-answer")
                    b_facts = gr.HTML()
                gr.Markdown("**The item's probe** (docs/probe.md): each key fact as a cloze stem, its candidates "
                            "with every probed system's log-likelihood and rank (#1 underlined), the true value "
                            "marked ✓.")
                probes = gr.State()
                chosen_id = gr.State()
                p_runs = gr.Dropdown([], value=[], multiselect=True, elem_id="bench-probe-runs",
                                     label="Probe runs (default: the latest of each probe stage)")
                b_probe = gr.HTML(elem_id="bench-probe")
                charts = gr.Gallery(label="Report charts", columns=3, elem_id="bench-charts")
                filters = [f_system, f_category, f_mode]

                def shown_figures(loaded, table):
                    return f"Rows shown — {benchmark.figures_markdown(loaded, table)}" if len(table) else ""

                def load_latest(system_, category_, mode_, item_id):
                    loaded = benchmark.load(store, items, review.all_reviews(store, settings), cache, settings.seed)
                    shown = benchmark.filter_table(loaded.table, system_, category_, mode_)
                    labels, latest = probe.choices(store)
                    probed = probe.load(store, latest, cache)
                    status = "  \n".join(part for part in (loaded.summary(), probe.summary(probed)) if part)
                    return (loaded, shown, [str(p) for p in loaded.charts], status, shown_figures(loaded, shown),
                            probed, gr.update(choices=labels, value=latest), panel(probed, item_id))

                def refilter(loaded, system_, category_, mode_):
                    if loaded is None:
                        return gr.skip(), gr.skip()
                    shown = benchmark.filter_table(loaded.table, system_, category_, mode_)
                    return shown, shown_figures(loaded, shown)

                def show_row(loaded, probed, evt: gr.SelectData):
                    if loaded is None or evt.row_value is None:
                        return "", "", "", None
                    row = dict(zip(benchmark.COLUMNS, evt.row_value))
                    return (*benchmark.detail(loaded, row["system"], row["id"]), probe.panel_html(probed, row["id"]),
                            row["id"])

                def panel(probed, item_id):
                    return probe.panel_html(probed, item_id) if item_id else ""

                def choose_probes(chosen, item_id):
                    probed = probe.load(store, chosen or [], cache)
                    return probed, panel(probed, item_id)

                def run_then_load(system_, limit_, *load_values):
                    status = benchmark.run_and_score(store, settings, system_, int(limit_ or 0) or None)
                    loaded, shown, gallery, summary, *rest = load_latest(*load_values)
                    return loaded, shown, gallery, f"{status}\n\n{summary}", *rest

                loaded_outputs = [evaluation, table, charts, b_status, b_figures, probes, p_runs, b_probe]
                load.click(load_latest, [*filters, chosen_id], loaded_outputs, api_name="benchmark")
                run.click(run_then_load, [r_system, r_limit, *filters, chosen_id], loaded_outputs,
                          api_name="benchmark_run", concurrency_limit=1)
                for f in filters:
                    f.change(refilter, [evaluation, *filters], [table, b_figures], api_name=False)
                table.select(show_row, [evaluation, probes], [b_answer, b_facts, b_probe, chosen_id], api_name=False)
                p_runs.input(choose_probes, [p_runs, chosen_id], [probes, b_probe], api_name=False)

            with gr.Tab("Review", id="review"):
                review.page(settings, store, items)

            with gr.Tab("Training", id="training"):
                with gr.Row():
                    t_run = gr.Dropdown([(training.LIVE_LABEL, training.LIVE)], value=training.LIVE,
                                        label="Training run", elem_id="train-run", scale=3)
                    t_rescan = gr.Button("Find stored runs", elem_id="train-rescan", scale=1)
                t_path = gr.Textbox(label="Live metrics CSV (the trainer's metrics.csv; empty: the newest one)",
                                    elem_id="train-path")
                t_status = gr.Markdown(elem_id="train-status")
                with gr.Row():
                    loss = gr.LinePlot(x="step", y="value", color="series", title="loss", height=280)
                    lr = gr.LinePlot(x="step", y="value", color="series", title="learning rate", height=280)
                    tput = gr.LinePlot(x="step", y="value", color="series", title="tokens / s", height=280)
                timer = gr.Timer(cfg.training_refresh_s)

                def show(run_: str, path: str):
                    """A stored run's curves, or the live CSV reread (an empty path finds the newest run's,
                    which may start after the UI)."""
                    if run_ != training.LIVE:
                        return (gr.skip(), *training.stored_curves(store, run_, cache))
                    found = path or str(handlers.find_metrics_csv(cfg.metrics_csv, settings.work_dir) or "")
                    return (gr.skip() if path else found, *handlers.training_curves(found))

                def tick(run_: str, path: str):
                    """Only the live CSV changes; a stored run is drawn once."""
                    return show(run_, path) if run_ == training.LIVE else (gr.skip(),) * 5

                def rescan():
                    return gr.update(choices=training.choices(store))

                outputs = [t_path, loss, lr, tput, t_status]
                timer.tick(tick, [t_run, t_path], outputs, api_name=False, show_progress="hidden")
                t_path.submit(show, [t_run, t_path], outputs, api_name="training")
                t_run.change(show, [t_run, t_path], outputs, api_name=False)
                t_rescan.click(rescan, None, t_run, api_name=False)
                demo.load(rescan, None, t_run, api_name=False)
                demo.load(show, [t_run, t_path], outputs, api_name=False)
    return demo


def launch(settings: UISettings, store: ArtifactStore | None = None, block: bool = True) -> gr.Blocks:
    """Serve on ``ui.host:ui.port`` (loopback by default), never through a public share link.

    ``block=False`` returns once the server listens (tests and benchmarks); call ``close()`` on the app.
    """
    cfg = settings.ui
    demo = build(settings, store or open_store(settings.store))
    demo.queue(max_size=cfg.queue_size, default_concurrency_limit=cfg.concurrency_limit)
    auth = (cfg.auth_user, cfg.auth_password.get_secret_value()) if cfg.auth_user and cfg.auth_password else None
    (settings.work_dir / "ui").mkdir(parents=True, exist_ok=True)
    demo.launch(server_name=cfg.host, server_port=cfg.port, share=False, auth=auth,
                max_threads=cfg.concurrency_limit + 20, allowed_paths=[str(settings.work_dir / "ui")],
                css=highlight.CSS + probe.CSS, prevent_thread_lock=not block, quiet=not block)
    return demo
