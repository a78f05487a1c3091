"""`drplan runbook`: the recovery written out for a person, generated so it never drifts.

From the plan and the newest complete run's manifest (snapshot ids, images, fingerprints)
it writes, into one directory:

* ``NN-<step>.md``: one file per recovery step of the schedule, numbered in an order
  that respects every dependency: purpose, preconditions, the exact docker and restic
  commands to run by hand when drplan itself is unavailable (``sh`` blocks that run on
  their own with ``bash -euo pipefail``), the checks, the expected duration (measured by
  past drills when there are some) and the crisis-cell role that does it;
* ``README.md``: the index: environment, waves, critical path, Gantt chart, contacts;
* ``gantt.svg``, ``compose/`` (the stack at zero replicas, each file under its path
  relative to the plan, so that ``a/compose.yml`` and ``b/compose.yml`` are both kept) and
  ``runbook.html``, a single printable file with no external asset.

Values from the plan and from the run's manifest are never written raw: shell words go
through :func:`drplan.runbook.quote.sh` (in :mod:`drplan.runbook.shell`, and the
``sh`` filter of the templates), Markdown text through the ``md`` and ``code`` filters;
the templates fail on any undefined value. :func:`write` writes only into a new, empty or
drplan-made directory (see :mod:`drplan.runbook.output`).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

import jinja2
import yaml
from markupsafe import Markup

from drplan.errors import DrplanError, InputError
from drplan.plan import model as m
from drplan.plan.compose import zero_compose
from drplan.plan.loaded import LoadedPlan
from drplan.plan.stack_objects import stack_objects
from drplan.plan.units import format_duration
from drplan.runbook import hooks, output
from drplan.runbook.quote import FENCE_LINE, code, md, sh
from drplan.runbook.shell import Generator
from drplan.schedule import Estimator, build_schedule
from drplan.schedule.gantt import render_gantt
from drplan.store import manifest as mf
from drplan.store.records import DrillRecord, list_drills, step_history
from drplan.store.restic import Repository

ROLE_TITLES = {
    "direction": "Direction",
    "technical_coordination": "Technical coordination",
    "communication": "Communication",
    "user_support": "User support",
}


@dataclass
class StepPage:
    number: int
    id: str
    kind: str
    service: str | None
    file: str
    wave: int
    purpose: str
    after: list[tuple[str, str]]  # (step id, file)
    blocks: list[tuple[str, str]]
    checks: list[tuple[str, str]]
    alternatives: list[tuple[str, str, str]]  # (when, caption, sh text)
    expected_s: float
    basis: str
    on_critical_path: bool
    critical: bool
    role: str
    role_people: list[dict] = field(default_factory=list)


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def slug(step_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", step_id).strip("-")


def compose_name(rel: str) -> str:
    """Where a compose file of the plan goes in the runbook: under compose/, at its path
    relative to the plan (``..`` becomes ``_up``, an absolute path goes under ``_root``),
    each name reduced to ``[A-Za-z0-9._-]`` (docker reads ``-c a,b`` as two files)."""
    p = PurePosixPath(posixpath.normpath(rel.replace("\\", "/")))
    parts = ["_root"] if p.is_absolute() else []
    for part in p.parts:
        if part in ("/", "."):
            continue
        parts.append("_up" if part == ".." else re.sub(r"[^A-Za-z0-9._-]", "_", part))
    return "compose/" + "/".join(parts or ["_"])


def _compose_names(rels: list[str]) -> list[str]:
    names = [compose_name(rel) for rel in rels]
    for i, name in enumerate(names):
        if name in names[:i]:
            other = rels[names.index(name)]
            raise InputError(
                f"compose files {other!r} and {rels[i]!r} would both be written as {name} in "
                "the runbook: rename one",
                where="stack.compose",
            )
    return names


def _people(pc: LoadedPlan, role: str) -> list[dict]:
    cell = pc.plan.crisis_cell
    if cell is None:
        return []
    out = []
    for pid in getattr(cell.roles, role, []):
        p = cell.people.get(pid)
        if p is not None:
            out.append(
                {
                    "id": pid,
                    "name": p.name,
                    "organisation": p.organisation,
                    "phone": p.phone,
                    "email": p.email,
                    "chat": p.chat,
                }
            )
    return out


def build(
    pc: LoadedPlan,
    repo: Repository,
    *,
    site: str | None = None,
    profile: str | None = None,
    run: str = "latest",
    stack: str | None = None,
    manifest: mf.Manifest | None = None,
    drills: list[DrillRecord] | None = None,
) -> dict:
    """The runbook as data (what the templates render). `manifest` and `drills` are read
    from the repository unless given."""
    if manifest is None:
        repo.open()
        manifest = mf.find_run(repo, pc.name, run)
    site_name, site_spec = pc.site(site, role="recovery")
    if drills is None:
        try:
            drills = list_drills(repo, pc.name)
        except DrplanError:
            drills = []
    history = {
        "restore:" + k[len("backup:") :]: v
        for k, v in manifest.timings.items()
        if k.startswith("backup:")
    }
    measured = step_history(repo, pc.name, drills)
    history.update(measured)
    schedule = build_schedule(pc.plan, profile=profile, estimator=Estimator(history=history))
    stack = stack or f"{site_spec.stack_prefix}{pc.name}"
    for key in repo.env:
        # written as `export NAME=...` in the runbook: a name, never shell text
        if not ENV_NAME.fullmatch(key):
            raise InputError(
                f"environment variable name {key!r} is not a valid shell name",
                where=f"repositories.{repo.name}.env",
            )
    compose_files = _compose_names(list(pc.plan.stack.compose))
    gen = Generator(pc, repo, manifest, site_spec, stack, schedule.services, compose_files)
    order = [sid for wave in schedule.waves for sid in wave]
    files = {sid: f"{i:02d}-{slug(sid)}.md" for i, sid in enumerate(order, 1)}
    wave_of = schedule.wave_of()
    critical = set(schedule.critical_path)
    tech = _people(pc, "technical_coordination")
    pages = []
    for i, sid in enumerate(order, 1):
        step = schedule.steps[sid]
        cmds = hooks.for_step(gen, step) if hooks.is_hook_step(step) else gen.for_step(step)
        basis = "measured by drills" if sid in measured else step.estimate_basis
        pages.append(
            StepPage(
                number=i,
                id=sid,
                kind=step.kind.value,
                service=step.service,
                file=files[sid],
                wave=wave_of[sid] + 1,
                purpose=cmds.purpose,
                after=[(a, files[a]) for a in sorted(step.after, key=order.index)],
                blocks=cmds.blocks,
                checks=cmds.checks,
                alternatives=cmds.alternatives,
                expected_s=step.estimate_s,
                basis=basis,
                on_critical_path=sid in critical,
                critical=step.critical,
                role="technical_coordination",
                role_people=tech,
            )
        )
    cell = pc.plan.crisis_cell
    roles = (
        [{"role": r, "title": t, "people": _people(pc, r)} for r, t in ROLE_TITLES.items()]
        if cell
        else []
    )
    repo_spec = pc.plan.repositories.get(repo.name)
    profile_spec = pc.plan.profiles.get(schedule.profile)
    return {
        "plan": pc.name,
        "description": pc.plan.description,
        "profile_description": profile_spec.description if profile_spec else "",
        "repository_description": repo_spec.description if repo_spec else "",
        "about": _about(pc, schedule.services),
        "stack": stack,
        "site": site_name,
        "site_description": site_spec.description,
        "docker_host": site_spec.docker_host,
        "docker_tls": _tls_env(site_spec.tls),
        "ssh_config": site_spec.ssh_config if site_spec.docker_host.startswith("ssh://") else None,
        "repository": {
            "name": repo.name,
            "url": repo.url,
            "type": repo.type,
            "env": sorted(repo.env),
            "options": repo.option_args(),
        },
        "run": {
            "run_id": manifest.run_id,
            "rpo_point": manifest.rpo_point,
            "images": manifest.images,
            "images_snapshot": manifest.images_snapshot,
            "sources": [
                s.model_dump(
                    include={"service", "source", "engine", "method", "snapshot", "path", "bytes"}
                )
                for s in manifest.sources
            ],
        },
        "profile": schedule.profile,
        "services": schedule.services,
        "waves": [[(sid, files[sid]) for sid in wave] for wave in schedule.waves],
        "critical_path": [(sid, files[sid]) for sid in schedule.critical_path],
        "estimated_rto_s": schedule.estimated_rto_s,
        "objective_rto_s": schedule.objective_rto_s,
        "drills": len(drills),
        "steps": pages,
        "roles": roles,
        "bridge": cell.bridge if cell else "",
        "generated_at": mf.utc_now(),
        "stack_objects": _stack_objects(pc, schedule.services, stack),
        "_schedule": schedule,
        "_compose": {
            name: zero_compose(
                _absolute_files(yaml.safe_load((pc.dir / rel).read_text()) or {}, pc.dir),
                schedule.services,
                site_spec,
                drop_ports=stack != pc.stack_name(site_spec),
            )
            for rel, name in zip(pc.plan.stack.compose, compose_files, strict=True)
        },
    }


def _stack_objects(pc: LoadedPlan, services: list[str], stack: str) -> list[dict]:
    """The secrets and configs the recovered services use: names and how each comes to
    exist on the site (never contents)."""
    return [
        {
            "kind": o.kind,
            "name": o.engine_name(stack),
            "how": "must exist on the site before the recovery (external)"
            if o.must_exist
            else "created by the deploy from a file"
            if o.file
            else "created by the deploy from the environment",
            "services": list(o.services),
        }
        for o in stack_objects(pc.compose, services)
    ]


def _about(pc: LoadedPlan, services: list[str]) -> list[dict]:
    """What the plan says of each service and each of its data sources (the operator
    reads it before touching them)."""
    out = []
    for name in services:
        svc = pc.plan.services[name]
        sources = [
            {"name": sname, "engine": source.engine, "description": source.description}
            for sname, source in svc.data.items()
        ]
        out.append(
            {
                "service": name,
                "tier": svc.tier,
                "critical": svc.critical,
                "description": svc.description,
                "sources": sources,
            }
        )
    return out


def _absolute_files(doc: dict, base: Path) -> dict:
    """Relative `file:` of configs and secrets, and env_file, made absolute (the compose
    is written elsewhere)."""
    for key in ("configs", "secrets"):
        for spec in (doc.get(key) or {}).values():
            if isinstance(spec, dict) and spec.get("file") and not spec["file"].startswith("/"):
                spec["file"] = str((base / spec["file"]).resolve())
    for svc in (doc.get("services") or {}).values():
        env_file = (svc or {}).get("env_file")
        if isinstance(env_file, str):
            svc["env_file"] = str((base / env_file).resolve())
        elif isinstance(env_file, list):
            svc["env_file"] = [
                str((base / f).resolve()) if isinstance(f, str) else f for f in env_file
            ]
    return doc


def _env(autoescape: bool) -> jinja2.Environment:
    """The templates' environment: an undefined value is an error, never an empty
    string; `sh` quotes a shell word, `md` and `code` write Markdown text and inline code
    that cannot add structure (see drplan.runbook.quote)."""
    env = jinja2.Environment(
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["dur"] = lambda s: format_duration(None if s is None else float(s))
    env.filters["sh"] = sh
    env.filters["md"] = md
    env.filters["code"] = code
    return env


def _template(name: str) -> str:
    return resources.files("drplan.runbook").joinpath(f"templates/{name}").read_text("utf-8")


def _check_block(text: str) -> None:
    """A shell block is written between ``` fences: it must end with a newline and hold
    no line that a Markdown reader would take for a fence. Values never put one there
    (quote.sh keeps every value on its line); this guards the generator itself."""
    if not text.endswith("\n") or FENCE_LINE.search(text):
        raise AssertionError(f"runbook block would break its Markdown fence: {text[:200]!r}")


def check_output(out: Path) -> None:
    """Refuse (InputError naming it) an output directory drplan must not write into, before
    any work is done (see drplan.runbook.output)."""
    output.previous_files(out)


def write(book: dict, out: Path) -> dict[str, str]:
    """Write the runbook into `out`: a new or empty directory, or one a previous runbook
    was written into, where its files are replaced and its stale step files removed;
    nothing else there is touched (drplan.runbook.output)."""
    for page in book["steps"]:
        for _, text in [*page.blocks, *page.checks]:
            _check_block(text)
        for _, _, text in page.alternatives:
            # written as inline code: one line, or its line breaks would become spaces
            if "\n" in text.rstrip("\n"):
                raise AssertionError(f"runbook alternative is not one line: {text[:200]!r}")
    files: dict[str, str] = {}
    for name, doc in book["_compose"].items():
        files[name] = yaml.safe_dump(doc, sort_keys=False)
    svg = render_gantt(book["_schedule"], title=f"Recovery of {book['stack']} (runbook)")
    files["gantt.svg"] = svg
    md_env = _env(False)
    step_t = md_env.from_string(_template("step.md.j2"))
    for page in book["steps"]:
        files[page.file] = step_t.render(b=book, s=page, total=len(book["steps"]))
    files["README.md"] = md_env.from_string(_template("index.md.j2")).render(b=book)
    files["runbook.html"] = (
        _env(True)
        .from_string(_template("runbook.html.j2"))
        .render(b=book, svg=_strip_xml_decl(svg))
    )
    output.write_files(out, files)
    return {
        "index": str(out / "README.md"),
        "html": str(out / "runbook.html"),
        "gantt": str(out / "gantt.svg"),
        "steps": str(len(book["steps"])),
    }


def _strip_xml_decl(svg: str) -> Markup:
    text = re.sub(r"^<\?xml[^>]*\?>\s*", "", svg)
    return Markup(text)  # our own SVG, rendered from an autoescaped template


def _tls_env(tls: m.TlsFiles | None) -> dict[str, str] | None:
    """How the runbook's shell gets the site's TLS files: the docker CLI reads them from
    one directory (DOCKER_CERT_PATH) under fixed names; `copy` says which file goes where
    when the plan's are elsewhere or named otherwise."""
    if tls is None:
        return None
    files = {"ca.pem": tls.ca, "cert.pem": tls.cert, "key.pem": tls.key}
    dirs = {posixpath.dirname(f) for f in files.values()}
    standard = len(dirs) == 1 and all(posixpath.basename(f) == n for n, f in files.items())
    return {
        "dir": dirs.pop() if standard else "/path/to/a/private/dir",
        "copy": "" if standard else ", ".join(f"{f} as {n}" for n, f in files.items()),
    }

