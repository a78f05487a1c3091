"""The by-hand commands of the recovery's hook steps (``before-restore:<service>``,
``after-restore:<service>``): each of the plan's hooks as drplan runs it
(drplan.actions.hooks), one block per hook, in order.

A container hook is a `docker exec` in the service's running container with the same
``DRPLAN_*`` environment; a host hook runs in a subshell in the plan's folder under
`timeout`. Every value (the hook's command, the stack's name, the folder) is one quoted
shell word (drplan.runbook.quote.sh): a stored plan's hook is text to read, never shell
that the runbook's own commands would interpret.
"""

from __future__ import annotations

import math

from drplan.plan import model as m
from drplan.plan.units import format_duration
from drplan.runbook.quote import sh, sh_join
from drplan.runbook.shell import Generator, StepCommands
from drplan.schedule.steps import Step, StepKind

PHASE = {StepKind.BEFORE_RESTORE: "before_restore", StepKind.AFTER_RESTORE: "after_restore"}
PURPOSE = {
    "before_restore": "Run the plan's before_restore hooks of {service}, in order, before "
    "its data is restored. If one fails, stop: the next ones and the restore need it.",
    "after_restore": "Run the plan's after_restore hooks of {service}, in order, now that "
    "its data is back and it is healthy, before its checks and before the services that "
    "depend on it start. Run every block, even after one fails, and note the failure.",
}


def is_hook_step(step: Step) -> bool:
    return step.kind in PHASE


def for_step(gen: Generator, step: Step) -> StepCommands:
    service = step.service or ""
    phase = PHASE[step.kind]
    hooks: list[m.Hook] = getattr(gen.pc.plan.services[service].hooks, phase)
    site = next((n for n, s in gen.pc.plan.sites.items() if s is gen.site), "")
    env = {
        "DRPLAN_HOOK": phase,
        "DRPLAN_SERVICE": service,
        "DRPLAN_STACK": gen.stack,
        "DRPLAN_SITE": site,
        "DRPLAN_RUN": gen.run.run_id,
    }
    blocks = []
    for i, hook in enumerate(hooks):
        argv = list(hook.run) if isinstance(hook.run, list) else ["sh", "-c", hook.run]
        limit = format_duration(float(hook.timeout))
        where = f"services.{service}.hooks.{phase}[{i}]"
        if hook.where == "host":
            assign = " ".join(f"{k}={sh(v)}" for k, v in env.items())
            seconds = max(1, math.ceil(float(hook.timeout)))
            text = (
                f"( cd -- {sh(gen.pc.dir)} && {assign} "
                f"timeout --kill-after=10 {seconds} {sh_join(argv)} )\n"
            )
            caption = f"{where}, on this host in the plan's folder (time limit {limit})"
        else:
            flags = " ".join(sh(f"--env={k}={v}") for k, v in env.items())
            text = gen.container(service) + f'docker exec {flags} "$C" {sh_join(argv)}\n'
            caption = (
                f"{where}, in the running container of {service} (time limit {limit}: "
                "stop it by hand beyond)"
            )
        blocks.append((caption, text))
    return StepCommands(PURPOSE[phase].format(service=service), blocks, [])
