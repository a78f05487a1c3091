"""Where a run keeps the compose files (drplan.actions.backup.stored_compose): normalised
paths inside the plan's folder; a compose file outside it is refused before any write,
as a located user error (a backup used to end in a traceback)."""

from __future__ import annotations

import pytest

from drplan.actions.backup import stored_compose
from drplan.actions.context import load_plan
from drplan.errors import InputError
from tests.unit.plan_helpers import COMPOSE, PLAN, write_stack


def test_a_dot_slash_path_is_stored_normalised(tmp_path):
    path = write_stack(tmp_path, PLAN.replace("compose: compose.yml", "compose: ./compose.yml"))
    assert stored_compose(load_plan(path)) == ["compose.yml"]


def test_a_compose_file_in_a_subfolder_keeps_its_place(tmp_path):
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "compose.yml").write_text(COMPOSE)
    path = write_stack(tmp_path, PLAN.replace("compose: compose.yml", "compose: stack/compose.yml"))
    assert stored_compose(load_plan(path)) == ["stack/compose.yml"]


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_a_compose_file_outside_the_plans_folder_is_refused(tmp_path, how):
    (tmp_path / "compose.yml").write_text(COMPOSE)
    (tmp_path / "plans").mkdir()
    ref = "../compose.yml" if how == "relative" else str(tmp_path / "compose.yml")
    plan = tmp_path / "plans" / "drplan.yml"
    plan.write_text(PLAN.replace("compose: compose.yml", f"compose: {ref}"))
    with pytest.raises(InputError, match="outside the plan's folder") as exc:
        stored_compose(load_plan(plan))
    assert "stack.compose" in str(exc.value.where)
