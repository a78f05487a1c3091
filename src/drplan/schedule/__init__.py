"""The recovery schedule: a DAG of steps, its waves, critical path and estimated RTO.

The recovery executor runs exactly these steps; ``drplan plan`` shows them.
Entry point: :func:`drplan.schedule.dag.build_schedule`.
"""

from drplan.schedule.dag import Schedule, build_schedule
from drplan.schedule.estimate import Estimator
from drplan.schedule.steps import Step, StepKind, build_steps

__all__ = ["Estimator", "Schedule", "Step", "StepKind", "build_schedule", "build_steps"]
