"""Unit-test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from drplan.crisis import cell
from tests.unit.crisis_helpers import Clock, crisis_context, crisis_plan


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def clock() -> Clock:
    """The crisis cell's clock, moved by hand."""
    return Clock()


@pytest.fixture
def ctx(tmp_path: Path, clock: Clock) -> cell.Context:
    """A crisis cell on a fresh plan."""
    return crisis_context(str(crisis_plan(tmp_path)), clock=clock)
