"""The plan's JSON Schema, generated from the pydantic model (`drplan schema`,
docs/plan.schema.json and the plan reference page)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from drplan.plan.model import Plan

SCHEMA_ID = "https://drplan.dev/schema/plan-v1.json"


def plan_schema(engines: Iterable[str] | None = None) -> dict[str, Any]:
    """The JSON Schema of a plan file (validation mode: what a user may write).

    `engines`: the names a data source's `engine` may take, listed as its enum. The plan
    layer knows no engine: callers pass ``drplan.sources.registry.names()``; without it
    the schema gives the shape of a name only."""
    schema = Plan.model_json_schema(mode="validation")
    _close_pattern_maps(schema)
    if engines is not None:
        engine = schema["$defs"]["DataSource"]["properties"]["engine"]
        engine.pop("pattern", None)
        engine["enum"] = sorted(engines)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text(engines: Iterable[str] | None = None) -> str:
    """Stable JSON text of the schema (what ``docs/plan.schema.json`` holds, with the
    engines of drplan.sources)."""
    return json.dumps(plan_schema(engines), indent=2, ensure_ascii=False) + "\n"


def _close_pattern_maps(node: Any) -> None:
    """Maps keyed by names only accept names: pydantic leaves other keys open."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_maps(value)
