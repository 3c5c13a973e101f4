"""docs/settings.md is generated from the settings models; a stale reference fails here."""

from __future__ import annotations

import importlib.util


def test_settings_reference_is_current(repo_root):
    spec = importlib.util.spec_from_file_location("gen_settings_doc", repo_root / "scripts" / "gen_settings_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (repo_root / "docs" / "settings.md").read_text()
    assert current == module.render(), "docs/settings.md is stale: run .venv/bin/python scripts/gen_settings_doc.py"
