"""The ``serve`` stage: create ``als-lm:<quant>`` in an Ollama server through its API and verify it
(§6.4, docs/export.md).

The tags get exactly what the export run's Modelfile says, whatever the settings are now.
"""

from __future__ import annotations

from pathlib import Path

from services.exporter.export import gguf_name
from services.exporter.serve import connect, create_tags, existing_tags, serve_markdown, tag_names, verify_tag
from services.exporter.settings import TEMPLATE, ExportConfig, ExporterSettings
from shared import runs, stages
from shared.manifest import Manifest
from shared.runs import RunNotFound, RunWriter
from shared.schemas.export import ExportReport, ServeReport
from shared.settings import fingerprinted
from shared.store import ArtifactStore


def run(store: ArtifactStore, settings: ExporterSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    serve = settings.serve
    export = runs.resolve(store, serve.export_run)
    if export.stage != "export":
        raise RunNotFound(f"{serve.export_run!r} is a {export.stage} run, not an export run")
    # Runs published before the stage graph recorded the export section unnested.
    cfg = ExportConfig.model_validate(export.settings.get("export", export.settings))
    report = ExportReport.model_validate_json(store.get_bytes(export.output("report.json").key))
    refs = {q: export.output(gguf_name(cfg.model_name, q)) for q in cfg.quants}
    client, version = connect(serve.host, serve.timeout_s)
    # Creating a model is a side effect on the server: a fresh server needs it again even when
    # the published run says it was done.
    force = force or not set(tag_names(cfg)) <= existing_tags(client)

    def body(writer: RunWriter, scratch: Path) -> None:
        files = {q: runs.fetch(store, ref, scratch / Path(ref.name).name) for q, ref in refs.items()}
        digests = create_tags(client, files, cfg, report.gpt_config["block_size"], version)
        tags = tag_names(cfg)
        checks = [verify_tag(client, serve.host, t, q, digests[q], serve.prompts, serve.verify_tokens)
                  for t, q in tags.items() if not t.endswith(":latest")]
        result = ServeReport(export_run=export.run, host=serve.host, server_version=version, backend="ollama",
                             tags=checks)
        writer.put_json("report.json", result.model_dump(mode="json"))
        writer.put_bytes("report.md", serve_markdown(result).encode())
        writer.metrics["tags"] = sorted(tags)
        for c in checks:
            writer.metrics[c.quant] = {
                "ttft_s": min(p.ttft_s for p in c.prompts),
                "tokens_per_s": sum(p.tokens_per_s for p in c.prompts) / len(c.prompts),
                "runner_rss_bytes": c.runner_rss_bytes,
            }

    settings_dict = stages.fingerprint_settings("serve", settings, export=fingerprinted(cfg, "serve"),
                                                 template=TEMPLATE)
    return runs.run_stage(store, "serve", settings_dict, runs.inputs_from(export, [r.name for r in refs.values()]),
                          body, work_dir=settings.work_dir, force=force)
