"""The stage graph (shared/stages.py): fingerprints built from the fields, hints that name real
commands, reads that name declared outputs."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import typing
from fnmatch import fnmatchcase
from pathlib import Path

import click
import pytest
from pydantic import BaseModel, Field, SecretStr, create_model

from als_lm.cli import cli
from als_lm.config_cmd import settings_class
from shared import runs, stages
from shared.runs import RunNotFound
from shared.settings import NOT_FINGERPRINTED, affects, fingerprinted


def _leaves(model: BaseModel, path: tuple[str, ...] = ()):
    """(path, field, marks along the path) for every non-section field under ``model``."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if isinstance(value, BaseModel):
            for sub_path, sub_field, marks in _leaves(value, (*path, name)):
                yield sub_path, sub_field, [extra.get("fingerprint", True), *marks]
        else:
            yield (*path, name), field, [extra.get("fingerprint", True)]


_SAMPLE = {int: 1, float: 0.5, bool: True, str: "x", Path: Path("x"), SecretStr: SecretStr("x")}


def _other(value, annotation):
    """A different value of the field's type (validation is bypassed, serialisation is not)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return next(a for a in args if a != value)
    if value is None:
        choice = args[0]
        if typing.get_origin(choice) is typing.Literal:
            return typing.get_args(choice)[0]
        return _other([], choice) if typing.get_origin(choice) is list else _SAMPLE[choice]
    if isinstance(value, list):
        item = (typing.get_args(annotation) or (str,))[0]
        sample = typing.get_args(item)[0] if typing.get_origin(item) is typing.Literal else _SAMPLE[item]
        return [*value, value[0] if value else sample]
    for kind, change in ((bool, lambda v: not v), (int, lambda v: v + 1), (float, lambda v: v * 2 + 1),
                         (str, lambda v: v + "x"), (Path, lambda v: v / "x"), (dict, lambda v: {**v, "x": "y"})):
        if isinstance(value, kind):
            return change(value)
    raise AssertionError(f"no changed value for {value!r}: extend _other")


def _replaced(model: BaseModel, path: tuple[str, ...], value) -> BaseModel:
    inner = value if len(path) == 1 else _replaced(getattr(model, path[0]), path[1:], value)
    return model.model_copy(update={path[0]: inner})


def _affects(marks: list, stage: str) -> bool:
    return all(m is True or (m is not False and any(fnmatchcase(stage, p) for p in m)) for m in marks)


@pytest.mark.parametrize("name", list(stages.STAGES))
def test_every_result_affecting_field_changes_the_fingerprint_and_no_other_does(name):
    stage = stages.STAGES[name]
    settings = settings_class(stage.service)()
    base = stages.fingerprint_settings(name, settings)
    checked = 0
    for path, field, marks in _leaves(settings):
        changed = stages.fingerprint_settings(name, _replaced(settings, path, _other(
            _get(settings, path), field.annotation)))
        expected = path[0] in stage.settings and _affects(marks, name)
        where = ".".join(path)
        if expected:
            checked += 1
            assert changed != base, f"{name}: {where} changes results but is not in its fingerprint"
        else:
            assert changed == base, f"{name}: {where} is marked as not changing its results, yet reruns it"
    assert checked or not stage.settings, f"{name} fingerprints no setting at all"


def _get(model: BaseModel, path: tuple[str, ...]):
    for name in path:
        model = getattr(model, name)
    return model


# Written out here, not read from the marks the fingerprint reads: marking a field NOT_FINGERPRINTED
# or affects(...) must come with an edit here, by someone who checked that the field cannot change
# the results of the stages it leaves out (where and how fast a stage runs, which run it reads).
NEVER_FINGERPRINTED = {
    'eval.benchmark', 'eval.checkpoint_base_scores', 'eval.checkpoint_scores', 'eval.eval_run', 'eval.limit', 'eval.num_thread',
    'eval.probe_run', 'eval.reviewer',
    'eval.serve_run', 'eval.system', 'eval.system_scores', 'eval.train_run', 'export.threads', 'export.train_run',
    'extract.extract_base_scores', 'extract.extract_seed_runs', 'extract.extract_train_run', 'extract.items_run',
    'extract.main_base_scores', 'extract.main_seed_runs',
    'extract.main_train_run', 'extract.qa_run',
    'extract.tokenize_run', 'train.tokens_run',
    'log_level', 'ollama_host', 'probe.export_runs', 'probe.items_run', 'probe.scratch_run', 'probe.seed_runs', 'probe.train_run', 'process.workers', 'rag.chroma_mode', 'rag.chroma_url',
    'scrape.autothrottle_max_delay', 'scrape.backoff_base', 'scrape.backoff_max',
    'scrape.clinicaltrials.requests_per_second', 'scrape.download_timeout', 'scrape.job_dir', 'scrape.ncbi_api_key',
    'scrape.pmc.email', 'scrape.pmc.requests_per_second', 'scrape.pmc.requests_per_second_with_key',
    'scrape.pmc.tool', 'scrape.retry_times', 'scrape.sample_dir', 'scrape.source', 'scrape.web.requests_per_second',
    'scrape.web.sources_file', 'scrape.wikipedia.maxlag', 'scrape.wikipedia.requests_per_second',
    'serve.export_run', 'serve.host', 'serve.timeout_s', 'store.access_key', 'store.backend', 'store.bucket',
    'store.create_bucket', 'store.endpoint', 'store.root', 'store.secret_key', 'store.secure',
    'train.checkpoint_dir', 'train.keep_checkpoints', 'work_dir',
}
ONLY_FINGERPRINTED_BY = {
    'eval.acceptability_threshold': {'score-*', 'report'},
    'eval.base_shots': {'eval-scratch_base'},
    'eval.claim_candidates': {'score-*', 'report'},
    'eval.claim_min_overlap': {'score-*', 'report'},
    'eval.claim_support_overlap': {'score-*', 'report'},
    'eval.claim_support_similarity': {'score-*', 'report'},
    'eval.claim_topic_similarity': {'score-*', 'report'},
    'eval.embedding_threshold': {'score-*', 'report'},
    'eval.fuzzy_threshold': {'score-*', 'report'},
    'eval.leakage_ngram': {'report'},
    'eval.leakage_threshold': {'report'},
    'eval.max_tokens': {'eval-*'},
    'eval.review_sample_size': {'review-*'},
    'eval.scratch_model': {'eval-scratch', 'eval-scratch_base'},
    'eval.token_coverage': {'score-*', 'report'},
    'eval.use_acceptability': {'score-*', 'report'},
    'eval.use_embeddings': {'score-*', 'report'},
    'extract.leak_ngram': {'extract-qa'},
    'probe.distractors': {'probe-items'},
    'probe.greedy_tokens': {'probe-scratch', 'probe-gguf', 'probe-rag'},
    'probe.gguf': {'probe-gguf'},
    'probe.ngram_add_k': {'probe-scratch'},
    'probe.rag_items': {'probe-rag'},
    'rag.chunk_overlap': {'eval-rag', 'rag-index'},
    'rag.chunk_tokens': {'eval-rag', 'rag-index'},
    'rag.collection': {'eval-rag', 'rag-index'},
    'rag.embedding_model': {'eval-rag', 'probe-rag', 'rag-index'},
    'rag.generator_model': {'eval-closed_book', 'eval-rag', 'probe-rag'},
    'rag.num_ctx': {'eval-closed_book', 'eval-rag', 'probe-rag'},
    'rag.top_k': {'eval-rag', 'probe-rag'},
    'scrape.clinicaltrials.api_url': {'scrape-clinicaltrials'},
    'scrape.clinicaltrials.condition': {'scrape-clinicaltrials'},
    'scrape.clinicaltrials.page_size': {'scrape-clinicaltrials'},
    'scrape.max_documents': {'scrape-wikipedia', 'scrape-pmc', 'scrape-clinicaltrials', 'scrape-web'},
    'scrape.pmc.eutils_url': {'scrape-pmc'},
    'scrape.pmc.fetch_batch': {'scrape-pmc'},
    'scrape.pmc.open_access_filter': {'scrape-pmc'},
    'scrape.pmc.priority_filter': {'scrape-pmc'},
    'scrape.pmc.queries': {'scrape-pmc'},
    'scrape.pmc.search_batch': {'scrape-pmc'},
    'scrape.user_agent': {'scrape-wikipedia', 'scrape-pmc', 'scrape-clinicaltrials', 'scrape-web'},
    'scrape.web.min_text_chars': {'scrape-web'},
    'scrape.wikipedia.api_url': {'scrape-wikipedia'},
}


def _marked(service: str) -> dict[str, set[str] | None]:
    out = {}
    for path, _, marks in _leaves(settings_class(service)()):
        if False in marks:
            out[".".join(path)] = None
        elif any(m is not True for m in marks):
            out[".".join(path)] = {p for m in marks if m is not True for p in m}
    return out


class _Inner(BaseModel):
    where: Path = Field(Path("w"), json_schema_extra=NOT_FINGERPRINTED)
    size: int = 3


def test_fingerprinted_keeps_the_fields_a_stage_depends_on_as_json_data():
    # Built here, not at import, so the markers are made while the test runs. Fields kept out come
    # first, so a loop that stopped at the first of them would lose the rest.
    section = create_model("Section", workers=(int, Field(4, json_schema_extra=NOT_FINGERPRINTED)),
                           judge=(str, Field("j", json_schema_extra=affects("score-*"))),
                           hidden=(str, Field("h", exclude=True)), path=(Path, Path("a/b")), inner=(_Inner, _Inner()))()
    assert fingerprinted(section, "score-rag") == {"judge": "j", "path": "a/b", "inner": {"size": 3}}
    assert fingerprinted(section, "train") == {"path": "a/b", "inner": {"size": 3}}


def test_the_fields_kept_out_of_fingerprints_are_exactly_the_reviewed_ones():
    marked: dict[str, set[str] | None] = {}
    for service in {s.service for s in stages.STAGES.values()}:
        marked.update(_marked(service))
    never = {k for k, v in marked.items() if v is None}
    assert never == NEVER_FINGERPRINTED, (f"newly unfingerprinted: {sorted(never - NEVER_FINGERPRINTED)}; "
                                          f"no longer: {sorted(NEVER_FINGERPRINTED - never)}")
    assert {k: v for k, v in marked.items() if v is not None} == ONLY_FINGERPRINTED_BY


def test_a_changed_ollama_host_worker_count_or_store_never_reruns_a_stage():
    processor = settings_class("processor")()
    assert stages.fingerprint_settings("process", processor) == stages.fingerprint_settings(
        "process", processor.model_copy(update={"process": processor.process.model_copy(update={"workers": 8}),
                                                "work_dir": Path("/elsewhere")}))
    exporter = settings_class("exporter")()
    moved = exporter.model_copy(update={"ollama_host": "http://ollama:11434",
                                        "serve": exporter.serve.model_copy(update={"host": "http://ollama:11434"})})
    assert stages.fingerprint_settings("serve", exporter) == stages.fingerprint_settings("serve", moved)


def test_every_affects_marker_names_a_declared_stage():
    for service in {s.service for s in stages.STAGES.values()}:
        for path, _, marks in _leaves(settings_class(service)()):
            for mark in marks:
                for pattern in mark if isinstance(mark, list) else []:
                    assert stages.matching(pattern), f"{'.'.join(path)} affects {pattern!r}, which no stage is"


def test_declared_sections_exist_in_the_stage_service_settings():
    for stage in stages.STAGES.values():
        fields = settings_class(stage.service).model_fields
        assert set(stage.settings) <= set(fields), f"{stage.name} declares sections its service lacks"


def test_every_read_names_a_declared_stage_and_one_of_its_outputs():
    for stage in stages.STAGES.values():
        for read in stage.reads:
            upstream = stages.matching(read.stage)
            assert upstream, f"{stage.name} reads {read.stage!r}, which no stage is"
            for up in upstream:
                written = {o.name for o in up.writes}
                for name in read.outputs:
                    assert name in written, f"{stage.name} reads {name} of {up.name}, which writes {sorted(written)}"


def _resolve(argv: list[str]) -> click.Command:
    """Parse ``als-lm ARGV`` as the command line would, without running it: unknown commands,
    options or choices fail here."""
    command, args, ctx = cli, list(argv), click.Context(cli, info_name="als-lm")
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"`als-lm {' '.join(argv)}`: no command {args[0]!r}"
        ctx = click.Context(sub, info_name=args[0], parent=ctx)
        command, args = sub, args[1:]
    command.make_context(ctx.info_name, args, parent=ctx.parent)
    return command


@pytest.mark.parametrize("name", list(stages.STAGES))
def test_every_missing_run_hint_names_a_real_command(name, local_store):
    with pytest.raises(RunNotFound) as err:
        runs.latest(local_store, name)
    command = re.search(r"run `als-lm ([^`]+)` first", str(err.value))
    assert command, f"{name}: the hint names no command: {err.value}"
    _resolve(command.group(1).split())


def test_a_hint_that_names_an_unknown_command_or_choice_fails_to_resolve():
    with pytest.raises(AssertionError, match="no command 'score'"):
        _resolve(["score"])
    with pytest.raises(click.BadParameter):
        _resolve(["eval", "run", "--system", "nonsense"])


def test_architecture_stage_table_is_current(repo_root):
    spec = importlib.util.spec_from_file_location("gen_stage_table", repo_root / "scripts" / "gen_stage_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (repo_root / "docs" / "architecture.md").read_text()
    assert current == module.updated(current), (
        "the stage table of docs/architecture.md is stale: run .venv/bin/python scripts/gen_stage_table.py")


@pytest.mark.parametrize("name", list(stages.STAGES))
def test_every_stage_is_one_run_function_of_one_shape(name):
    """services/<service>/stages/<kind>.py with ``run(store, settings, *, force)``: a stage's code is
    found from its declaration, and every stage is called the same way."""
    module = importlib.import_module(stages.STAGES[name].module)
    params = inspect.signature(module.run).parameters
    assert list(params)[:2] == ["store", "settings"]
    assert params["force"].kind is inspect.Parameter.KEYWORD_ONLY
