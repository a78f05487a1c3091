"""Property-based: whatever the input, `validate` exits 0 or 2 and prints located lines.

Random YAML values, random bytes, and mutations of a valid plan (deleted keys, wrong
types, random strings, injected cycles) all go through the CLI function in-process;
one subprocess run checks the installed console script on garbage.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_helpers import COMPOSE, PLAN, PROBLEM_LINE, assert_problem_lines
from typer.testing import CliRunner

from drplan.cli import app

# hypothesis runs hundreds of plans through the CLI: seconds each, so not in the fast tier
pytestmark = pytest.mark.slow

RUNNER = CliRunner()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["P1", "P4", "2h", "1x", "03:00", "dump", "cold", "files", "db", "web"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def check_cli(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "compose.yml").write_text(COMPOSE)
        path = Path(tmp) / "plan.yml"
        path.write_bytes(content)
        result = RUNNER.invoke(app, ["validate", str(path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 2), result.stdout
    if result.exit_code == 2:
        assert result.stdout.strip(), "exit 2 without a problem"
        assert_problem_lines(result.stdout)
    else:
        assert result.stdout.strip().split("\n")[-1].startswith("OK: ")


def dump(value: object) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True).encode("utf-8")


@SETTINGS
@given(values)
def test_random_yaml_values(value):
    check_cli(dump(value))


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(raw):
    check_cli(raw)


@SETTINGS
@given(st.text(max_size=200))
def test_random_text(text):
    check_cli(text.encode("utf-8"))


BASE = yaml.safe_load(PLAN)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _parent(doc: object, path: tuple) -> object:
    for el in path[:-1]:
        doc = doc[el]
    return doc


mutation = st.sampled_from(["delete", "replace", "insert", "cycle", "string", "wrong_type"])


@SETTINGS
@given(
    st.lists(
        st.tuples(mutation, st.integers(min_value=0), values, st.text(max_size=15)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_plans(mutations):
    doc = copy.deepcopy(BASE)
    for op, index, value, text in mutations:
        paths = _paths(doc)
        if not paths:
            break
        path = paths[index % len(paths)]
        parent, key = _parent(doc, path), path[-1]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = value
        elif op == "string":
            parent[key] = text
        elif op == "wrong_type":
            old = parent[key]
            parent[key] = [old] if not isinstance(old, list) else {"x": old}
        elif op == "insert" and isinstance(parent, dict):
            parent[text or "k"] = value
        elif op == "cycle" and isinstance(doc.get("services"), dict):
            names = [n for n, s in doc["services"].items() if isinstance(s, dict)]
            if len(names) >= 2:
                a, b = names[index % len(names)], names[(index + 1) % len(names)]
                doc["services"][a]["depends_on"] = [b]
                doc["services"][b]["depends_on"] = [a]
    check_cli(dump(doc))


def test_injected_cycle_is_reported():
    doc = copy.deepcopy(BASE)
    doc["services"]["db"]["depends_on"] = ["web"]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "compose.yml").write_text(COMPOSE)
        path = Path(tmp) / "plan.yml"
        path.write_bytes(dump(doc))
        result = RUNNER.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "dependency cycle: db→web→db" in result.stdout


def test_console_script_on_garbage(tmp_path):
    drplan = Path(sys.executable).parent / "drplan"
    cases = {
        "binary.yml": bytes(range(256)) * 4,
        "list.yml": b"- 1\n- 2\n",
        "empty.yml": b"",
        "broken.yml": b"services: {web: [\n",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    targets = [*(str(tmp_path / n) for n in cases), str(tmp_path), str(tmp_path / "missing.yml")]
    for target in targets:
        proc = subprocess.run(
            [str(drplan), "validate", target], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2, (target, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = [x for x in proc.stdout.split("\n") if x]
        assert lines and all(PROBLEM_LINE.match(x) for x in lines), proc.stdout
