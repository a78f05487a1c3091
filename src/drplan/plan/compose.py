"""Read the compose/stack file(s) a plan names, the way Docker Compose reads them.

What drplan needs: service names, images, dependencies (``depends_on`` in both forms with
``condition``/``required``, ``links``), mounts (named volumes under their real engine
names, bind mounts with their host path, anonymous volumes), the effective environment
(``environment`` over ``env_file``, each value with where it came from), healthchecks,
replicas, ports, profiles, secrets, configs and placement constraints. ``.env`` and
``${VAR:-default}`` interpolation and ``extends`` are resolved first, as Compose does,
or a draft would name the wrong database user or host directory.
``init --from`` and ``validate`` both go through here, so they agree on names.
Several files are merged the way ``docker compose -f a -f b`` does (later wins).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drplan.plan.interpolate import interpolate, interpolate_tree, read_dotenv
from drplan.plan.loader import Document, Problem, parse_yaml_file

PROCESS_ENV = "environment"  # origin of a variable set in drplan's own environment


@dataclass
class Mount:
    """A volume mount of a service: a named volume, a bind mount or a tmpfs.

    `source` is as written (after interpolation); for a bind mount `host_path` is that
    path resolved against the project directory (the first compose file's folder).
    A volume with no source is anonymous: it has no name a recovery could find."""

    type: str  # volume | bind | tmpfs | ...
    source: str | None
    target: str
    read_only: bool = False
    host_path: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.type == "volume" and not self.source


@dataclass(frozen=True)
class EnvValue:
    """One variable of a service's effective environment and where its value comes from.

    origin: ``environment`` (written in the service's `environment`), ``pass-through``
    (`- NAME` with no value: taken from ``.env`` or drplan's environment) or
    ``env_file``. `file`: the env_file, or the ``.env`` that set the variable `ref`
    (None: drplan's own environment, or unset). `ref`: the interpolation variable the
    whole value came from (``POSTGRES_PASSWORD: ${DB_PASS}`` -> ``DB_PASS``): what a
    drafted plan names instead of copying a secret value."""

    value: str
    origin: str
    file: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class Dependency:
    """A `depends_on` entry (long form fields; the short form's defaults)."""

    condition: str = "service_started"
    required: bool = True
    restart: bool = False


@dataclass(frozen=True)
class ComposeObject:
    """A top-level volume, secret or config: its key and what the engine knows it by."""

    key: str
    name: str | None = None  # explicit `name:` (or the external name)
    external: bool = False
    file: str | None = None  # secrets/configs: the host file, resolved
    environment: str | None = None  # secrets: the variable holding it
    driver: str | None = None  # volumes: their driver (None: local)
    driver_opts: tuple[tuple[str, str], ...] = ()  # volumes: e.g. (type, nfs), (o, bind)

    @property
    def shared(self) -> bool:
        """A volume on shared storage (a driver other than `local`, or `driver_opts`:
        an NFS mount, a bind to a shared directory): the same data from every node."""
        return bool(self.driver_opts) or self.driver not in (None, "", "local")

    @property
    def real_name(self) -> str | None:
        """The name the engine knows it by when not namespaced by the stack."""
        return self.name or (self.key if self.external else None)


@dataclass
class ComposeService:
    """One service of a compose file (only the parts drplan reads)."""

    name: str
    image: str | None = None
    depends_on: list[str] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    healthcheck: dict[str, Any] | None = None
    replicas: int | None = None
    ports: list[Any] = field(default_factory=list)
    env: dict[str, EnvValue] = field(default_factory=dict)
    env_files: list[str] = field(default_factory=list)  # resolved paths, in order
    depends: dict[str, Dependency] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    active: bool = True  # False: only in profiles that are not active
    secrets: list[str] = field(default_factory=list)  # keys of top-level secrets
    configs: list[str] = field(default_factory=list)
    placement: list[str] = field(default_factory=list)  # deploy.placement.constraints
    command: Any = None
    entrypoint: Any = None

    @property
    def volumes(self) -> list[str]:
        """Named volumes this service mounts."""
        return [mt.source for mt in self.mounts if mt.type == "volume" and mt.source]

    @property
    def binds(self) -> list[Mount]:
        return [mt for mt in self.mounts if mt.type == "bind" and mt.source]

    @property
    def anonymous_volumes(self) -> list[str]:
        """Container paths on anonymous volumes (gone with the container's volume)."""
        return [mt.target for mt in self.mounts if mt.anonymous]

    @property
    def profile_only(self) -> bool:
        return bool(self.profiles)


@dataclass
class ComposeProject:
    """The merged compose files of a stack."""

    files: list[str]
    name: str | None = None
    services: dict[str, ComposeService] = field(default_factory=dict)
    volumes: set[str] = field(default_factory=set)
    documents: list[Document] = field(default_factory=list)
    directory: str | None = None  # the project directory: the first file's folder
    variables: dict[str, str] = field(default_factory=dict)  # interpolation environment
    variable_files: dict[str, str | None] = field(default_factory=dict)  # .env path / None
    active_profiles: set[str] = field(default_factory=set)
    volume_specs: dict[str, ComposeObject] = field(default_factory=dict)
    secrets: dict[str, ComposeObject] = field(default_factory=dict)
    configs: dict[str, ComposeObject] = field(default_factory=dict)

    def volume_real_name(self, stack: str, key: str) -> str:
        """The engine's name of top-level volume `key` in stack `stack`: its `name:` or
        external name, else ``<stack>_<key>`` (what ``docker stack deploy`` creates)."""
        spec = self.volume_specs.get(key)
        real = spec.real_name if spec else None
        return real or f"{stack}_{key}"

    def dotenv_variables(self) -> dict[str, str]:
        """The variables the project's ``.env`` sets and drplan's environment does not:
        what ``docker stack deploy`` (which reads no ``.env``) must be given to deploy
        the values drplan read."""
        return {k: v for k, v in self.variables.items() if self.variable_files.get(k)}

    def without_volume_names(self) -> ComposeProject:
        """A copy whose volumes are all the stack's own (a drill's isolated copy)."""
        import dataclasses

        return dataclasses.replace(
            self, volume_specs={k: ComposeObject(k) for k in self.volume_specs}
        )


def _as_str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    return []


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _env_mapping(value: Any) -> dict[str, Any]:
    """`environment` (or `labels`) as a mapping; a listed bare NAME maps to None."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    out: dict[str, Any] = {}
    for item in _as_str_list(value):
        k, eq, v = item.partition("=")
        out[k] = v if eq else None
    return out


def _deps(value: Any) -> dict[str, Dependency]:
    if isinstance(value, dict):  # long form: {db: {condition: service_healthy}}
        out = {}
        for k, spec in value.items():
            spec = spec if isinstance(spec, dict) else {}
            out[str(k)] = Dependency(
                str(spec.get("condition", "service_started")),
                spec.get("required", True) is not False,
                bool(spec.get("restart", False)),
            )
        return out
    return {name: Dependency() for name in _as_str_list(value)}


def _mount(value: Any, named: set[str]) -> Mount | None:
    if isinstance(value, dict):
        target = value.get("target")
        if not isinstance(target, str):
            return None
        kind = str(value.get("type", "volume"))
        source = value.get("source")
        return Mount(kind, str(source) if source else None, target, bool(value.get("read_only")))
    if not isinstance(value, str):
        return None
    parts = value.split(":")
    if len(parts) == 1:  # anonymous volume
        return Mount("volume", None, parts[0])
    source, target = parts[0], parts[1]
    ro = len(parts) > 2 and "ro" in parts[2].split(",")
    if source.startswith(("/", ".", "~", "$")) or (source not in named and "/" in source):
        return Mount("bind", source, target, ro)
    return Mount("volume", source, target, ro)


def _host_path(source: str, base: Path) -> str:
    if source.startswith("~"):
        source = os.path.expanduser(source)
    return posixpath.normpath(source if source.startswith("/") else str(base / source))


# -- merging (override files and `extends`) ---------------------------------------------

_APPENDED = ("ports", "expose", "external_links", "dns", "dns_search", "links", "env_file")


def _mount_target(entry: Any) -> Any:
    mt = _mount(entry, set())
    return mt.target if mt else repr(entry)


def _ref_source(entry: Any) -> Any:
    return entry.get("source") if isinstance(entry, dict) else entry


def _merge_by(base: Any, over: Any, key: Any) -> list[Any]:
    merged = {key(e): e for e in (base if isinstance(base, list) else [])}
    merged.update({key(e): e for e in (over if isinstance(over, list) else [])})
    return list(merged.values())


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def merge_service(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` applied on `base` with Compose's rules: mappings merge, mounts by target,
    secrets and configs by source, environment and labels by name, ports and env_files
    append, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        if k not in out or out[k] is None:
            out[k] = v
            continue
        b = out[k]
        if k == "volumes":
            out[k] = _merge_by(b, v, _mount_target)
        elif k in ("secrets", "configs"):
            out[k] = _merge_by(b, v, _ref_source)
        elif k in ("environment", "labels"):
            out[k] = {**_env_mapping(b), **_env_mapping(v)}
        elif k == "depends_on":
            bd = b if isinstance(b, dict) else {n: {} for n in _as_str_list(b)}
            vd = v if isinstance(v, dict) else {n: {} for n in _as_str_list(v)}
            out[k] = {**bd, **vd}
        elif k in _APPENDED:
            seen = _listed(b)
            out[k] = seen + [e for e in _listed(v) if e not in seen]
        elif k == "networks" and not (isinstance(b, dict) and isinstance(v, dict)):
            bn = b if isinstance(b, dict) else dict.fromkeys(_as_str_list(b))
            vn = v if isinstance(v, dict) else dict.fromkeys(_as_str_list(v))
            out[k] = {**bn, **vn}
        elif isinstance(b, dict) and isinstance(v, dict):
            out[k] = _deep_merge(b, v)
        else:
            out[k] = v
    return out


def _deep_merge(base: dict[Any, Any], over: dict[Any, Any]) -> dict[Any, Any]:
    out = dict(base)
    for k, v in over.items():
        b = out.get(k)
        out[k] = _deep_merge(b, v) if isinstance(b, dict) and isinstance(v, dict) else v
    return out


def _rebase(spec: dict[str, Any], frm: Path, to: Path) -> dict[str, Any]:
    """Relative host paths of a service taken from a file in `frm`, made absolute (an
    extended service keeps its own file's meaning of `./x`)."""
    if frm == to:
        return spec

    def fix(p: str) -> str:
        return p if p.startswith(("/", "~")) else str(frm / p)

    out = dict(spec)
    if "env_file" in out:
        out["env_file"] = [
            {**e, "path": fix(str(e.get("path", "")))} if isinstance(e, dict) else fix(str(e))
            for e in _listed(out["env_file"])
        ]
    if isinstance(out.get("volumes"), list):
        vols = []
        for e in out["volumes"]:
            if isinstance(e, str) and e.startswith("."):
                e = fix(e)
            elif (
                isinstance(e, dict)
                and e.get("type") == "bind"
                and str(e.get("source", ""))[:1] == "."
            ):
                e = {**e, "source": fix(str(e["source"]))}
            vols.append(e)
        out["volumes"] = vols
    return out


# -- loading ----------------------------------------------------------------------------


@dataclass
class _File:
    """One parsed compose file, interpolated."""

    doc: Document
    data: dict[str, Any]
    dir: Path
    path: Path  # resolved: identifies the file in an `extends` chain


class _Loader:
    """Reads the files of one project: interpolation environment, extends, merging."""

    def __init__(
        self,
        project_dir: Path,
        problems: list[Problem],
        shown_dir: str,
        environ: Mapping[str, str],
    ) -> None:
        self.dir = project_dir
        self.dotenv_shown = posixpath.join(shown_dir, ".env")
        self.problems = problems
        self.files: dict[Path, _File | None] = {}
        self.docs: dict[Path, Document] = {}
        self.env: dict[str, str] = {}
        self.env_from: dict[str, str | None] = {}
        dotenv = project_dir / ".env"
        if dotenv.is_file():
            try:
                values = read_dotenv(dotenv)
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(str(dotenv), 1, 1, "(root)", f"cannot read: {exc}"))
                values = {}
            self.env.update(values)
            self.env_from.update(dict.fromkeys(values, str(dotenv)))
        for k, v in environ.items():  # the process environment wins over .env
            self.env[k] = v
            self.env_from[k] = None
        self.env_cache: dict[str, dict[str, str] | None] = {}

    def load(self, path: Path, display: str | None = None) -> _File | None:
        key = path.resolve()
        if key in self.files:
            return self.files[key]
        doc = parse_yaml_file(path, display=display)
        self.docs[key] = doc
        self.problems.extend(doc.problems)
        self.files[key] = None
        if doc.data is None:
            if doc.root is None and not doc.problems:
                self.problems.append(Problem(doc.file, 1, 1, "(root)", "empty compose file"))
            return None
        if not isinstance(doc.data, dict):
            self.problems.append(doc.problem((), "a compose file is a mapping with `services`"))
            return None
        missing: dict[str, tuple[Any, ...]] = {}

        def failed(loc: tuple[Any, ...], message: str) -> None:
            self.problems.append(doc.problem(loc, message, severity="warning"))

        data = interpolate_tree(_normalised(doc.data), self.env, failed, missing)
        for name, loc in missing.items():
            self.problems.append(
                doc.problem(
                    loc,
                    f"variable {name} is not set (Compose uses an empty string): set it in "
                    f"{self.dotenv_shown} or the environment",
                    severity="warning",
                )
            )
        f = _File(doc, data, path.parent, key)
        self.files[key] = f
        return f

    def service(self, f: _File, name: str, seen: tuple[tuple[Path, str], ...] = ()) -> dict:
        """Service `name` of file `f` with its `extends` chain applied."""
        services = f.data.get("services")
        spec = services.get(name) if isinstance(services, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        ext = spec.get("extends")
        if ext is None:
            return spec
        spec = {k: v for k, v in spec.items() if k != "extends"}
        base_name = (
            ext if isinstance(ext, str) else ext.get("service") if isinstance(ext, dict) else None
        )
        base_file = ext.get("file") if isinstance(ext, dict) else None
        where = ("services", name, "extends")
        if not isinstance(base_name, str):
            self.problems.append(f.doc.problem(where, "`extends` needs a `service`"))
            return spec
        target = f
        if isinstance(base_file, str):
            p = f.dir / base_file
            if not p.is_file():
                self.problems.append(
                    f.doc.problem(where, f"extended file {base_file!r} does not exist")
                )
                return spec
            loaded = self.load(p, display=posixpath.join(posixpath.dirname(f.doc.file), base_file))
            if loaded is None:
                return spec
            target = loaded
        step = (target.path, base_name)
        if step in seen:
            self.problems.append(f.doc.problem(where, f"`extends` loops back to {base_name!r}"))
            return spec
        if len(seen) >= 64:
            self.problems.append(f.doc.problem(where, "`extends` chain longer than 64"))
            return spec
        tservices = target.data.get("services")
        if not isinstance(tservices, dict) or base_name not in tservices:
            self.problems.append(
                f.doc.problem(
                    where, f"extended service {base_name!r} does not exist in {target.doc.file}"
                )
            )
            return spec
        base = _rebase(self.service(target, base_name, (*seen, step)), target.dir, f.dir)
        return merge_service(base, spec)

    def env_file(self, path: str) -> dict[str, str] | None:
        if path not in self.env_cache:
            try:
                self.env_cache[path] = read_dotenv(Path(path), self.env)
            except (OSError, UnicodeDecodeError):
                self.env_cache[path] = None
        return self.env_cache[path]


def _normalised(data: dict[str, Any]) -> dict[str, Any]:
    """`environment` lists as mappings before interpolation, so that ``- A=${B}`` keeps
    the reference to B like ``A: ${B}`` does."""
    services = data.get("services")
    if not isinstance(services, dict):
        return data
    fixed = {}
    for name, spec in services.items():
        if isinstance(spec, dict) and isinstance(spec.get("environment"), list):
            spec = {**spec, "environment": _env_mapping(spec["environment"])}
        fixed[name] = spec
    return {**data, "services": fixed}


def _objects(value: Any, base: Path) -> dict[str, ComposeObject]:
    out = {}
    for key, spec in value.items() if isinstance(value, dict) else []:
        spec = spec if isinstance(spec, dict) else {}
        ext = spec.get("external")
        name = spec.get("name")
        if isinstance(ext, dict) and isinstance(ext.get("name"), str):  # legacy form
            name = name or ext["name"]
        file = spec.get("file")
        env = spec.get("environment")
        driver = spec.get("driver")
        opts = spec.get("driver_opts")
        out[str(key)] = ComposeObject(
            str(key),
            str(name) if isinstance(name, str | int) and name != "" else None,
            bool(ext),
            _host_path(file, base) if isinstance(file, str) else None,
            env if isinstance(env, str) else None,
            str(driver) if isinstance(driver, str) else None,
            tuple(sorted((str(k), str(v)) for k, v in opts.items()))
            if isinstance(opts, dict)
            else (),
        )
    return out


def load_compose(
    paths: list[Path],
    *,
    display: list[str] | None = None,
    profiles: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ComposeProject, list[Problem]]:
    """Parse and merge compose files. Problems are located in the compose files.

    `profiles`: the active Compose profiles (default: COMPOSE_PROFILES from the
    environment or ``.env``, as Compose does). `environ`: the environment that overrides
    ``.env`` (default: drplan's own, as Compose uses its own)."""
    shown = display or [str(p) for p in paths]
    project = ComposeProject(files=shown)
    problems: list[Problem] = []
    if not paths:
        return project, problems
    base = paths[0].resolve().parent
    project.directory = str(base)
    loader = _Loader(
        base, problems, posixpath.dirname(shown[0]), os.environ if environ is None else environ
    )
    project.variables, project.variable_files = loader.env, loader.env_from
    merged: dict[str, dict[str, Any]] = {}
    where: dict[str, _File] = {}
    tops: dict[str, dict[str, Any]] = {"volumes": {}, "secrets": {}, "configs": {}}
    for path, name in zip(paths, shown, strict=True):
        f = loader.load(path, display=name)
        project.documents.append(loader.docs[path.resolve()])
        if f is None:
            continue
        data = f.data
        if isinstance(data.get("name"), str):
            project.name = data["name"]
        for key in tops:
            top = data.get(key)
            if isinstance(top, dict):
                for k, v in top.items():
                    old = tops[key].get(str(k))
                    both = isinstance(old, dict) and isinstance(v, dict)
                    tops[key][str(k)] = _deep_merge(old, v) if both else v
            elif top is not None:
                problems.append(f.doc.problem((key,), f"`{key}` must be a mapping"))
        services = data.get("services")
        if not isinstance(services, dict):
            problems.append(f.doc.problem(("services",), "no `services` mapping"))
            continue
        for sname in services:
            spec = loader.service(f, sname)
            key = str(sname)
            merged[key] = merge_service(merged[key], spec) if key in merged else spec
            where[key] = f
    if project.name is None and loader.env.get("COMPOSE_PROJECT_NAME"):
        project.name = loader.env["COMPOSE_PROJECT_NAME"]
    active = profiles
    if active is None:
        active = [p.strip() for p in loader.env.get("COMPOSE_PROFILES", "").split(",")]
    project.active_profiles = {p for p in active if p}
    project.volumes = set(tops["volumes"])
    project.volume_specs = _objects(tops["volumes"], base)
    project.secrets = _objects(tops["secrets"], base)
    project.configs = _objects(tops["configs"], base)
    for sname, spec in merged.items():
        project.services[sname] = _service(sname, spec, project, loader, where[sname])
    for svc in project.services.values():
        deps = [
            d
            for d, dep in svc.depends.items()
            if dep.required or (d in project.services and project.services[d].active)
        ]
        svc.depends_on = deps + [lk for lk in svc.links if lk not in deps]
    return project, problems


def _service(
    name: str, raw: dict[str, Any], project: ComposeProject, loader: _Loader, f: _File
) -> ComposeService:
    svc = ComposeService(name=name)
    if not isinstance(raw, dict):
        return svc
    base = loader.dir
    image = raw.get("image")
    svc.image = str(image) if isinstance(image, str | int | float) else None
    svc.depends = _deps(raw.get("depends_on"))
    svc.links = [lk.split(":", 1)[0] for lk in _as_str_list(raw.get("links"))]
    vols = raw.get("volumes")
    for v in vols if isinstance(vols, list) else []:
        mt = _mount(v, project.volumes)
        if mt is None:
            continue
        if mt.type == "bind" and mt.source:
            mt.host_path = _host_path(mt.source, base)
        svc.mounts.append(mt)
    _env(svc, raw, project, loader, f)
    svc.environment = {k: v.value for k, v in svc.env.items()}
    hc = raw.get("healthcheck")
    svc.healthcheck = hc if isinstance(hc, dict) else None
    deploy = raw.get("deploy")
    if isinstance(deploy, dict):
        if isinstance(deploy.get("replicas"), int):
            svc.replicas = deploy["replicas"]
        placement = deploy.get("placement")
        if isinstance(placement, dict):
            svc.placement = _as_str_list(placement.get("constraints"))
    ports = raw.get("ports")
    svc.ports = ports if isinstance(ports, list) else []
    svc.profiles = _as_str_list(raw.get("profiles"))
    active = project.active_profiles
    svc.active = not svc.profiles or "*" in active or bool(active & set(svc.profiles))
    svc.secrets = [str(_ref_source(s)) for s in _listed(raw.get("secrets")) if _ref_source(s)]
    svc.configs = [str(_ref_source(s)) for s in _listed(raw.get("configs")) if _ref_source(s)]
    svc.command, svc.entrypoint = raw.get("command"), raw.get("entrypoint")
    return svc


def _env(
    svc: ComposeService, raw: dict[str, Any], project: ComposeProject, loader: _Loader, f: _File
) -> None:
    """The effective environment: env_files in order, then `environment` over them."""
    for entry in _listed(raw.get("env_file")):
        path = entry.get("path") if isinstance(entry, dict) else entry
        required = not (isinstance(entry, dict) and entry.get("required") is False)
        if not isinstance(path, str | Path):
            continue
        resolved = _host_path(str(path), loader.dir)
        svc.env_files.append(resolved)
        values = loader.env_file(resolved)
        if values is None:
            if required:
                loc = ("services", svc.name, "env_file")
                loader.problems.append(
                    f.doc.problem(
                        loc,
                        f"service {svc.name}: env_file {path} cannot be read (Compose "
                        "refuses to start it)",
                        severity="warning",
                    )
                )
            continue
        for k, v in values.items():
            svc.env[k] = EnvValue(v, "env_file", resolved)
    for k, v in _env_mapping(raw.get("environment")).items():
        if v is None:
            if k in project.variables:
                svc.env[k] = EnvValue(
                    project.variables[k], "pass-through", project.variable_files.get(k), k
                )
            continue
        ref = getattr(v, "ref", None)
        svc.env[k] = EnvValue(
            _env_text(v),
            "environment",
            project.variable_files.get(ref) if ref else None,
            ref,
        )


def long_port(entry: Any) -> dict[str, Any] | None:
    """A `ports:` entry in long syntax ({target, published?, protocol}); None when it is
    not understood. "127.0.0.1:8080:80/udp" -> {target: 80, published: 8080, protocol:
    udp}; a range "9000-9001:80-81" keeps its published range as a string."""
    if isinstance(entry, dict):
        return entry
    if isinstance(entry, int):
        return {"target": entry}
    if not isinstance(entry, str):
        return None
    spec, _, proto = entry.partition("/")
    parts = spec.split(":")
    target = parts[-1]
    out: dict[str, Any] = {"target": int(target) if target.isdigit() else target}
    if len(parts) >= 2 and parts[-2]:
        pub = parts[-2]
        out["published"] = int(pub) if pub.isdigit() else pub
    if len(parts) >= 3 and parts[-3]:
        out["host_ip"] = parts[-3]
    if proto:
        out["protocol"] = proto
    return out


def published_ports(ports: list[Any]) -> list[int]:
    """The host ports a service's `ports:` entries publish (long and short syntax).

    "8080:80", "127.0.0.1:8080:80/tcp" and "9000-9001:80-81" publish; a bare "80" or a
    long-syntax entry without `published` does not (the engine picks a port).
    """
    out: list[int] = []
    for entry in ports:
        pub = (long_port(entry) or {}).get("published")
        if isinstance(pub, int):
            out.append(pub)
        elif isinstance(pub, str):
            out.extend(_port_range(pub))
    return out


def _port_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        return []
    return list(range(int(lo), int(hi or lo) + 1))


def published_by_service(document: dict) -> list[tuple[str, int]]:
    """(service, host port) for every port a compose document's services publish."""
    services = document.get("services") or {}
    return [
        (name, port)
        for name, spec in services.items()
        for port in published_ports((spec or {}).get("ports") or [])
    ]


def zero_compose(
    data: dict, services: list[str], site, *, drop_ports: bool, isolate: bool = False
) -> dict:
    """A compose document defining `services` at zero replicas (the others removed).

    `drop_ports`: a copy beside production (test, training, drill) must not take
    production's published ports. `isolate`: external networks and volumes become the
    copy's own, so it shares nothing with production. The site's `placement` replaces a
    service's placement constraints (an empty list drops them).
    """
    services_doc = data.get("services") or {}
    for name in list(services_doc):
        if name not in services:
            del services_doc[name]
            continue
        spec = services_doc[name] or {}
        services_doc[name] = spec
        deploy = spec.setdefault("deploy", {}) or {}
        spec["deploy"] = deploy
        if deploy.get("mode") != "global":
            deploy["replicas"] = 0
        override = site.services.get(name)
        if drop_ports or isolate:
            spec.pop("ports", None)
        elif override and override.ports:
            spec["ports"] = _override_ports(spec.get("ports", []), override.ports)
        spec.pop("depends_on", None)
        constraints = getattr(site, "placement", {}).get(name)
        if constraints is not None:
            _place(deploy, constraints)
    if isolate:
        for key in ("networks", "volumes"):
            for name, spec in list((data.get(key) or {}).items()):
                if isinstance(spec, dict) and spec.get("external"):
                    data[key][name] = {"driver": "overlay"} if key == "networks" else {}
    volumes = data.get("volumes")
    for name, opts in getattr(site, "volume_options", {}).items():
        if isinstance(volumes, dict) and name in volumes:
            spec = volumes[name] if isinstance(volumes[name], dict) else {}
            volumes[name] = {**spec, "driver_opts": dict(opts)}
    return data


def _place(deploy: dict, constraints: list[str]) -> None:
    """The site's placement constraints instead of the compose file's (none: dropped)."""
    placement = deploy.get("placement")
    placement = dict(placement) if isinstance(placement, dict) else {}
    if constraints:
        placement["constraints"] = list(constraints)
    else:
        placement.pop("constraints", None)
    if placement:
        deploy["placement"] = placement
    else:
        deploy.pop("placement", None)


def map_bind_sources(
    data: dict, paths: dict[str, str], variables: dict[str, str] | None = None
) -> dict:
    """The compose document with the bind mounts of host directories that a site maps
    elsewhere (its `paths: {plan path: path here}`) binding the mapped directory: the
    recovered data is there. Sources must already be absolute (relative ones resolved
    against the compose file's folder) or, with `variables`, become absolute once
    interpolated (`${UPLOAD_LOCATION}`); others are kept as written."""
    if not paths:
        return data
    mapping = {posixpath.normpath(k): v for k, v in paths.items()}

    def mapped(source: str) -> str:
        full = source
        if "$" in source and variables is not None:
            try:
                full = interpolate(source, variables)
            except ValueError:
                return source
        if not full.startswith("/"):
            return source
        return mapping.get(posixpath.normpath(full), source)

    for spec in (data.get("services") or {}).values():
        volumes = spec.get("volumes") if isinstance(spec, dict) else None
        if not isinstance(volumes, list):
            continue
        for i, mount in enumerate(volumes):
            if isinstance(mount, str) and mount.startswith(("/", "$")):
                cut = _source_end(mount)
                volumes[i] = mapped(mount[:cut]) + mount[cut:]
            elif (
                isinstance(mount, dict)
                and mount.get("type") == "bind"
                and isinstance(mount.get("source"), str)
            ):
                volumes[i] = {**mount, "source": mapped(mount["source"])}
    return data


def _source_end(mount: str) -> int:
    """Where the source of a short `volumes:` entry ends: its first `:` outside `${...}`
    (``${DIR:-/srv/x}:/data`` has its source before the second colon)."""
    depth = 0
    for i, ch in enumerate(mount):
        if ch == "{" and i and mount[i - 1] == "$":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        elif ch == ":" and not depth:
            return i
    return len(mount)


def _override_ports(ports: list, mapping: dict[int, int]) -> list:
    """Publish container port `target` on host port `mapping[target]` (the site's
    `ports: {target: published}`); the other entries are kept as written."""
    out = []
    for entry in ports:
        long = long_port(entry)
        if long is not None and isinstance(long.get("target"), int) and long["target"] in mapping:
            entry = {**long, "published": mapping[long["target"]]}
        out.append(entry)
    return out
