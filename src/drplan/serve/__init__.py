"""`drplan serve`: the daemon that keeps a plan's promises (schedule, retention, checks,
drills, RPO) without cron.

It runs the same commands a user types (`drplan backup PLAN --json`...) as child
processes, one at a time per plan, and keeps its own bookkeeping in SQLite
(serve/state.py). The repository stays the truth about runs and drills: the daemon reads
it back through `drplan status/runs/drills --json` (serve/facts.py), and its own records
only say what it started, when, and how that ended. See docs/design/serve.md.
"""
