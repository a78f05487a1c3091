"""Repository maintenance: off-site copies (3-2-1), retention, integrity checks."""

from __future__ import annotations

import random
from datetime import datetime

from drplan import labels as lbl
from drplan.actions.backup import prepare_repository
from drplan.actions.context import PlanContext
from drplan.errors import InputError, OperationError
from drplan.sources import engine_for
from drplan.store import layout, records
from drplan.store import manifest as mf
from drplan.store.restic import Repository


def _run_snapshots(repo: Repository, plan: str) -> dict[str, list[dict]]:
    """Snapshots of this plan grouped by run id."""
    runs: dict[str, list[dict]] = {}
    for snap in repo.snapshots(layout.tags(plan)):
        run = layout.tag(snap, "run")
        if run:
            runs.setdefault(run, []).append(snap)
    return runs


def copy_runs(pc: PlanContext) -> list[dict]:
    """Copy every complete run missing from each off-site repository (manifest last)."""
    primary = pc.repository()
    copies = pc.copies()
    if not copies:
        raise InputError(
            "the plan has no off-site copy repository (role: copy)", where=str(pc.path)
        )
    primary.open()
    complete = [m for _, m in mf.list_runs(primary, pc.name) if m.complete]
    by_run = _run_snapshots(primary, pc.name)
    results = []
    for target in copies:
        target.open()
        present = {m.run_id for _, m in mf.list_runs(target, pc.name) if m.complete}
        copied, already = [], []
        for m in complete:
            if m.run_id in present:
                already.append(m.run_id)
                continue
            snaps = by_run.get(m.run_id, [])
            data = [s["id"] for s in snaps if not layout.has(s, "kind", layout.Kind.MANIFEST)]
            # a reused images snapshot belongs to an earlier run: copy it too
            for ref in (m.images_snapshot,):
                if ref and not any(d.startswith(ref) or ref.startswith(d) for d in data):
                    data.append(ref)
            manifests = [s["id"] for s in snaps if layout.has(s, "kind", layout.Kind.MANIFEST)]
            what = f"copy of run {m.run_id} to {target.name}"
            primary.copy_to(target, data, what=what)
            primary.copy_to(target, manifests, what=what)
            copied.append(m.run_id)
        results.append(
            {"repository": target.name, "url": target.url, "copied": copied, "already": already}
        )
    return results


def retained(
    runs: list[mf.Manifest], keep_last: int, keep_daily: int, keep_weekly: int, keep_monthly: int
) -> set[str]:
    """Run ids kept by the policy; the newest complete run is always kept."""
    complete = sorted((m for m in runs if m.complete), key=lambda m: m.started_at, reverse=True)
    keep: set[str] = set()
    if complete:
        keep.add(complete[0].run_id)
    keep.update(m.run_id for m in complete[:keep_last])
    for count, key in ((keep_daily, "%Y-%m-%d"), (keep_weekly, "%G-W%V"), (keep_monthly, "%Y-%m")):
        seen: list[str] = []
        for m in complete:
            bucket = mf.parse_time(m.started_at).strftime(key)
            if bucket not in seen:
                if len(seen) >= count:
                    break
                seen.append(bucket)
                keep.add(m.run_id)
    return keep


def prune(
    pc: PlanContext,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    repository: str | None = None,
) -> dict:
    repo = pc.repository(repository)
    repo.refuse_if_append_only("prune")
    ret = pc.plan.backup.retention
    with repo.exclusive(f"prune of {pc.name}"):
        engine = pc.engine()
        prepare_repository(pc, engine, repo)
        runs = [m for _, m in mf.list_runs(repo, pc.name)]
        keep = retained(runs, ret.keep_last, ret.keep_daily, ret.keep_weekly, ret.keep_monthly)
        kept = [m for m in runs if m.run_id in keep]
        referenced = set()
        for m in kept:
            referenced.update(s.snapshot for s in m.sources)
            referenced.update(x for x in (m.images_snapshot, m.config_snapshot) if x)
        by_run = _run_snapshots(repo, pc.name)
        known = {m.run_id for m in runs}
        forget_runs = sorted(r for r in known if r not in keep)
        orphan_runs = [r for r in by_run if r not in known]
        ids = []
        for run in forget_runs + orphan_runs:
            ids += [s["id"] for s in by_run.get(run, []) if s["id"] not in referenced]
        if not dry_run and ids:
            repo.forget(ids, what=f"prune of {pc.name}")
            repo.prune(what=f"prune of {pc.name}")
    return {
        "keep": sorted(keep),
        "forget": forget_runs,
        "orphan_runs": orphan_runs,
        "orphan_snapshots": sum(len(by_run[r]) for r in orphan_runs),
        "forgotten_snapshots": 0 if dry_run else len(ids),
        "dry_run": dry_run,
    }


def check(
    pc: PlanContext,
    *,
    read_data_subset: str | None = None,
    samples: int = 0,
    repository: str | None = None,
) -> dict:
    """restic check, then re-verify stored sources of the newest run against its manifest.

    Each sampled source is read back from the repository and fingerprinted the same way
    as at backup time (dumps re-parsed, files listed, RDB and SQLite files hashed).
    `samples` = 0 checks every source.
    """
    repo = pc.repository(repository)
    engine = pc.engine()
    with repo.exclusive(f"check of {pc.name}"):
        prepare_repository(pc, engine, repo)
        repo.check(read_data_subset=read_data_subset)
    latest = mf.find_run(repo, pc.name)
    sources = list(latest.sources)
    if samples and samples < len(sources):
        sources = random.sample(sources, samples)
    results = []
    for rec in sources:
        impl = engine_for(rec.engine, rec.method)
        try:
            # an engine at hand: a stored file the workload made is opened in a helper
            # container there, not by this host's tools (threat model, class 3)
            stored = impl.stored_fingerprint(
                repo,
                rec,
                engine=engine,
                labels=lbl.owned_by(pc.name, "check"),
            )
            diffs = impl.compare(rec.fingerprint, stored)
        except OperationError as exc:
            diffs = [str(exc)]
        results.append(
            {"service": rec.service, "source": rec.source, "ok": not diffs, "differences": diffs}
        )
    result = {
        "repository": "ok",
        "name": repo.name,
        "url": repo.url,
        "run_id": latest.run_id,
        "samples": results,
        "ok": all(r["ok"] for r in results),
        "checked_at": mf.utc_now(),
        "read_data_subset": read_data_subset,
    }
    records.record_check(repo, pc.name, pc.host, result)
    return result
