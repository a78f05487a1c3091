"""The risk matrix (cells, JSON, text, SVG) and both charts rendered to PNG and looked at."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from drplan.plan.validate import validate_file
from drplan.render import png_stats, svg_to_png
from drplan.risks import build_matrix
from drplan.risks.matrix import criticality, level_of
from drplan.risks.render import render_svg
from drplan.schedule import build_schedule
from drplan.schedule.gantt import render_gantt
from tests.unit.crisis_helpers import run_cli
from tests.unit.plan_helpers import EXAMPLES

STRASBOURG = EXAMPLES / "strasbourg-moodle" / "plan.yml"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def plan():
    result = validate_file(STRASBOURG)
    assert result.ok
    return result.plan


def test_strasbourg_cells(plan) -> None:
    matrix = build_matrix(plan)
    assert len(matrix.cells) == 16
    fire = matrix.cell("low", "very_high")
    assert [r.id for r in fire.risks] == ["dc-fire"]
    assert fire.level == "high"
    top = matrix.cell("medium", "very_high")
    assert {r.id for r in top.risks} == {"intrusion-sabotage", "technical-catastrophe"}
    assert top.level == "critical"
    assert [r.id for r in matrix.cell("medium", "high").risks] == ["network-loss"]
    assert {r.id for r in matrix.cell("low", "high").risks} == {"ransomware", "destructive-attack"}
    assert sum(len(c.risks) for c in matrix.cells.values()) == len(plan.risks) == 7


def test_criticality_levels() -> None:
    assert level_of(criticality("very_low", "low"))[0] == "low"
    assert level_of(criticality("low", "low"))[0] == "low"
    assert level_of(criticality("medium", "low"))[0] == "moderate"
    assert level_of(criticality("low", "high"))[0] == "moderate"
    assert level_of(criticality("low", "very_high"))[0] == "high"
    assert level_of(criticality("medium", "very_high"))[0] == "critical"
    assert level_of(criticality("high", "very_high"))[1] == "#e53935"


def test_json(plan, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["risks", str(STRASBOURG), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["probabilities"] == ["very_low", "low", "medium", "high"]
    assert data["impacts"] == ["low", "medium", "high", "very_high"]
    assert len(data["cells"]) == 16
    cell = next(
        c for c in data["cells"] if c["probability"] == "low" and c["impact"] == "very_high"
    )
    assert cell == {
        "probability": "low",
        "impact": "very_high",
        "criticality": 4,
        "level": "high",
        "colour": "#ff9800",
        "count": 1,
        "risks": ["dc-fire"],
        "triggers_plan": ["dc-fire"],
    }
    link = next(r for r in data["risks"] if r["id"] == "network-loss")
    assert link["triggers_plan"] is False and link["level"] == "high"
    fire = next(r for r in data["risks"] if r["id"] == "dc-fire")
    assert fire["mitigation"] == "second datacenter at Illkirch, off-site copy"
    assert "description" in fire  # the scenario, shown with the mitigation in the text table
    assert data["summary"] == {
        "risks": 7,
        "trigger_plan": 6,
        "by_level": {"low": 0, "moderate": 3, "high": 2, "critical": 2},
    }


def test_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["risks", str(STRASBOURG)], capsys)
    assert code == 0
    assert "★ dc-fire" in out and "network-loss" in out and "★ network-loss" not in out
    assert "very high" in out and "critical" in out
    assert "mitigation" in out  # the scenario / mitigation column


def test_invalid_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["risks", str(tmp_path / "nope.yml")], capsys)
    assert code == 2 and "does not validate" in err


def test_svg_structure(plan, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_svg = tmp_path / "risks.svg"
    code, _, err = run_cli(["risks", str(STRASBOURG), "--svg", str(out_svg)], capsys)
    assert code == 0 and f"wrote {out_svg}" in err
    root = ET.fromstring(out_svg.read_text())
    assert root.tag == f"{SVG}svg"
    w, h = int(root.get("width")), int(root.get("height"))
    assert root.get("viewBox") == f"0 0 {w} {h}"
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    for label in ("Probability →", "Impact →", "very low", "very high", "Criticality"):
        assert label in texts, label
    assert "dc-fire ★" in texts and "network-loss" in texts
    bold = {
        "".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("font-weight") == "bold"
    }
    assert "dc-fire ★" in bold and "network-loss" not in bold
    cells = root.find(f"{SVG}g[@id='cells']")
    assert cells is not None and len(cells.findall(f"{SVG}g")) == 16


def test_svg_escapes_and_clips(plan) -> None:
    risk = plan.risks[0].model_copy(
        update={"id": "a-very-long-risk-identifier-indeed", "event": "<script>&"}
    )
    svg = render_svg(build_matrix(plan.model_copy(update={"risks": [risk]})), "T & <x>")
    ET.fromstring(svg)
    assert "<script>" not in svg and "T &amp; &lt;x&gt;" in svg
    assert "a-very-long-risk-iden…" in svg


needs_rsvg = pytest.mark.skipif(
    shutil.which("rsvg-convert") is None, reason="rsvg-convert missing (librsvg2-bin)"
)


def assert_looks_rendered(png: Path, min_w: int, min_h: int, min_colours: int = 8) -> None:
    """A person opening the PNG would see a chart: a real size, colours, ink on the page."""
    stats = png_stats(png)
    assert stats.width >= min_w and stats.height >= min_h, stats
    assert stats.colours >= min_colours, stats
    assert 0.02 < stats.ink < 0.95, stats


@needs_rsvg
def test_risk_matrix_png(plan, tmp_path: Path) -> None:
    svg = render_svg(build_matrix(plan), "Risk matrix of moodle")
    png = svg_to_png(svg, tmp_path / "risks.png")
    assert_looks_rendered(png, 600, 500)


@needs_rsvg
def test_empty_register_still_draws_the_grid(plan, tmp_path: Path) -> None:
    svg = render_svg(build_matrix(plan.model_copy(update={"risks": []})), "empty")
    assert_looks_rendered(svg_to_png(svg, tmp_path / "empty.png"), 600, 400)


@needs_rsvg
@pytest.mark.parametrize("example", ["strasbourg-moodle", "dockerwarts"])
def test_gantt_png(example: str, tmp_path: Path) -> None:
    result = validate_file(EXAMPLES / example / "plan.yml")
    assert result.ok
    svg = render_gantt(build_schedule(result.plan), f"Recovery of {example}")
    assert_looks_rendered(svg_to_png(svg, tmp_path / "gantt.png"), 600, 150)


@needs_rsvg
def test_blank_svg_is_caught(tmp_path: Path) -> None:
    blank = '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"/>'
    stats = png_stats(svg_to_png(blank, tmp_path / "blank.png"))
    assert stats.ink == 0 and stats.colours == 1
    with pytest.raises(AssertionError):
        assert_looks_rendered(tmp_path / "blank.png", 100, 100)


@needs_rsvg
def test_svg_to_png_reports_bad_svg(tmp_path: Path) -> None:
    from drplan.errors import OperationError

    with pytest.raises(OperationError, match="rsvg-convert failed"):
        svg_to_png("<svg", tmp_path / "bad.png")


def test_png_stats_rejects_non_png(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="not a PNG"):
        png_stats(tmp_path / "x.png")
