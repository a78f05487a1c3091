"""``drplan schema``: the plan's JSON Schema, generated from the pydantic model."""

from __future__ import annotations

import json
from typing import Any

from drplan.plan.model import Plan

SCHEMA_ID = "https://drplan.dev/schema/plan-v1.json"


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of a plan file (validation mode: what a user may write)."""
    schema = Plan.model_json_schema(mode="validation")
    _close_pattern_maps(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """Stable JSON text of the schema (what ``docs/plan.schema.json`` holds)."""
    return json.dumps(plan_schema(), indent=2, ensure_ascii=False) + "\n"


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
