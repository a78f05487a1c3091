"""The committed JSON Schema and reference page are generated from the current model."""

from __future__ import annotations

import json

from plan_helpers import ROOT

from drplan.cli import app
from drplan.plan.docs import render_reference
from drplan.plan.schema import plan_schema, schema_text
from drplan.sources import registry

GEN = "run `.venv/bin/python scripts/gen_docs.py` and commit the result"


def test_schema_file_is_current():
    # the engines listed are drplan.sources' (the model knows none)
    assert (ROOT / "docs" / "plan.schema.json").read_text() == schema_text(registry.names()), GEN


def test_reference_page_is_current():
    expected = render_reference(plan_schema(registry.names()))
    assert (ROOT / "docs" / "plan-reference.md").read_text() == expected, GEN


def test_every_field_has_a_description():
    schema = plan_schema()
    models = {"Plan": schema, **schema["$defs"]}
    missing = [
        f"{name}.{key}"
        for name, model in models.items()
        for key, prop in model.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []
    assert all(model.get("description") for model in models.values())


def test_schema_command(runner):
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "Plan"


def test_cli_reference_is_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "docs" / "cli-reference.md").read_text() == gen.cli_reference(), GEN
