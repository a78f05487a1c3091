"""The DR plan model: the single source of truth every other part of drplan reads.

Backups, recovery, drills, runbooks and the crisis cell all consume this model, so it is
strict (unknown keys are errors, ``extra="forbid"``) and self-describing (every field has
a description; the JSON Schema in ``docs/plan.schema.json`` and the reference page
``docs/plan-reference.md`` are generated from it). Checks that need the whole plan (names
that must exist elsewhere, cycles, objectives against the schedule) live in
:mod:`drplan.plan.validate` so they can be reported with a file location.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from drplan.plan.ssh_url import parse_ssh_url
from drplan.plan.units import DURATION_PATTERN, SIZE_PATTERN, parse_duration, parse_size

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "examples": ["30s", "15m", "2h", "1d"],
        }
    ),
]
"""Seconds; written as a number of seconds or ``30s``, ``15m``, ``2h``, ``1d``, ``1h30m``."""

Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": SIZE_PATTERN},
                {"type": "integer", "minimum": 0},
            ],
            "examples": ["500MB", "10GiB"],
        }
    ),
]
"""Bytes; written as a number of bytes or ``500MB``, ``10GiB``, ``2T``."""

# What Compose accepts for service and volume names (letters of any script, digits, `_`,
# `.`, `-`), less a leading `.` or `-`: a name may become a path component or a command's
# argument, and the runbook quotes every value (runbook/quote.py) anyway.
NAME_PATTERN = r"^\w[\w.-]*$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=128)]
# an environment variable's name: it is exported in runbooks and helpers' environments
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
"""A service, site, repository, data source, profile or person name."""

Tier = Literal["P1", "P2", "P3"]
ENGINE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
_ENGINE_NAME = re.compile(ENGINE_NAME_PATTERN)


def _engine_name(value: str) -> str:
    if not _ENGINE_NAME.match(value):
        raise ValueError(
            f"{value[:40]!r} is not an engine name (lower-case letters, digits and _; "
            "`drplan schema` lists the engines)"
        )
    return value


# An engine is named after its module in drplan.sources (or an alias it declares). The
# plan layer does not know which engines exist: `drplan validate` checks the name against
# those drplan.sources finds (plan.validate, `engines=`), and the schema lists them from
# there too (plan.schema, `engines=`). Here only the shape, which a run's manifest (read
# back from a repository) must have too.
EngineName = Annotated[
    str,
    AfterValidator(_engine_name),
    WithJsonSchema({"type": "string", "pattern": ENGINE_NAME_PATTERN}),
]
Method = Literal["dump", "cold"]
Probability = Literal["very_low", "low", "medium", "high"]
Impact = Literal["low", "medium", "high", "very_high"]
DOCKER_HOST_SCHEMES = ("unix", "tcp", "ssh", "npipe")


class Strict(BaseModel):
    """Base of every plan model: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class Secret(Strict):
    """Where a secret comes from. Exactly one of ``env``, ``file``, ``command``.

    The secret itself is never written in the plan: plans are committed next to the
    stack and read by many people.
    """

    env: str | None = Field(None, description="Name of an environment variable holding the secret.")
    file: str | None = Field(
        None,
        description="Path of a file whose first line is the secret (relative to the plan file).",
    )
    command: str | None = Field(
        None,
        description="Shell command printing the secret on stdout, e.g. `pass show drplan/restic`.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        given = [k for k in ("env", "file", "command") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a secret reference needs exactly one of env, file or command"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


# --- sites -------------------------------------------------------------------------


HOST_PATH_RULE = (
    "must be an absolute host path with no variable left to interpolate "
    "(e.g. /srv/app/uploads), other than /"
)


def host_path_ok(path: str) -> bool:
    """An absolute, literal host directory (a `bind` source or a site's mapping of one):
    a relative path or a `${VAR}` would name a different directory on each machine."""
    return path.startswith("/") and path.strip("/") != "" and not ({"$", "\0"} & set(path))


class SiteServiceOverride(Strict):
    """What differs for one service on a given site."""

    replicas: int | None = Field(
        None, ge=0, description="Number of replicas on this site (default: as in compose)."
    )
    ports: dict[int, int] = Field(
        default_factory=dict,
        description="Published ports on this site, as `target: published` (container port → "
        "host port).",
    )


class TlsFiles(Strict):
    """The files of a TLS-protected Docker endpoint (`tcp://host:2376`), as `docker
    --tlsverify --tlscacert --tlscert --tlskey` takes them."""

    ca: str = Field(description="CA certificate the engine's certificate must chain to.")
    cert: str = Field(description="Client certificate drplan presents.")
    key: str = Field(description="The client certificate's private key.")

    @field_validator("ca", "cert", "key")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not host_path_ok(value) or any(ord(c) < 32 for c in value):
            raise ValueError(f"{value[:80]!r} {HOST_PATH_RULE}, on one line")
        return value


class Site(Strict):
    """A Docker endpoint: the primary site or a recovery site."""

    role: Literal["primary", "recovery"] = Field(
        description="`primary` runs the stack today; `recovery` is where it is brought back."
    )
    docker_host: str = Field(
        description="Docker endpoint URL: `unix:///var/run/docker.sock`, `tcp://host:2376`, "
        "`ssh://user@host`."
    )
    description: str = Field("", description="Free text: where the site is, who runs it.")
    stack_prefix: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_-]*$",
        max_length=32,
        description="Prefix added to the stack name on this site (e.g. `dr-`), so a drill can "
        "run next to production.",
    )
    services: dict[Name, SiteServiceOverride] = Field(
        default_factory=dict,
        description="Per-service differences on this site (replicas, published ports).",
    )

    paths: dict[str, str] = Field(
        default_factory=dict,
        description="Host directories of the plan's `bind` sources on this site, as `path in "
        "the plan: path here` (absolute paths; default: the same path). A recovery here "
        "restores the data there and binds it in the deployed compose file.",
    )

    placement: dict[Name, list[str]] = Field(
        default_factory=dict,
        description="Placement constraints of services on this site, as `service: "
        "[constraint, ...]`, replacing the compose file's `deploy.placement.constraints` "
        "(an empty list drops them; default: kept as written). E.g. `app: "
        "[node.labels.zone == dr]`.",
    )

    volume_options: dict[Name, dict[str, str]] = Field(
        default_factory=dict,
        description="`driver_opts` of the compose file's volumes on this site, as `volume: "
        "{option: value}`, replacing the compose file's (shared storage that differs there: "
        "another NFS server or export, another shared directory). A recovery creates the "
        "volume with them before restoring into it, and deploys the stack with them. E.g. "
        "`files: {type: nfs, o: addr=nfs.dr.example.org,rw, device: \":/export/files\"}`.",
    )

    nodes: dict[str, str] = Field(
        default_factory=dict,
        description="How drplan reaches the Docker engine of each node of this site's Swarm "
        'cluster, as `hostname: Docker URL` (same schemes as `docker_host`). The key `"*"` '
        "is a template for the nodes not named, where `{hostname}` and `{addr}` (the node's "
        'address as Swarm reports it) are replaced: e.g. `"*": ssh://root@{addr}` or '
        '`"*": unix:///run/drplan/{hostname}/docker.sock`. Without an entry for a node, '
        "drplan can act only on the node `docker_host` points at (a manager): it cannot back "
        "up or restore data held on the others.",
    )

    ssh_config: str | None = Field(
        None,
        description="The ssh client configuration file for this site's `ssh://` endpoints "
        "(`docker_host` and `nodes`), passed to ssh as `-F` (absolute path; default: ssh's "
        "own, `~/.ssh/config`). drplan runs the OpenSSH client as the docker CLI does, with "
        "`docker system dial-stdio` on the remote host: keys, agent, `known_hosts` and "
        "`ProxyJump` (nodes reachable only through a bastion or the manager) are ssh's. It "
        "never prompts (`BatchMode`): use an agent or a key without a passphrase.",
    )

    tls: TlsFiles | None = Field(
        None,
        description="TLS files of this site's `tcp://` endpoints (`docker_host` and `nodes`): "
        "the engine's certificate is verified against `ca` and drplan presents `cert`/`key` "
        "(the engine's `--tlsverify`). Default: `DOCKER_CERT_PATH` (`ca.pem`, `cert.pem`, "
        "`key.pem`) when `DOCKER_TLS_VERIFY` is set, as the docker CLI does; else plain TCP.",
    )

    def host_dir(self, path: str) -> str:
        """Where a `bind` source's directory `path` (as the plan names it) is on this site."""
        return self.paths.get(path, path)

    def node_url(self, hostname: str, addr: str) -> str | None:
        """The Docker URL of node `hostname` (Swarm's address `addr`): its own entry in
        `nodes`, else the `"*"` template; None when `nodes` has neither, or the template
        needs an address Swarm did not report."""
        template = self.nodes.get(hostname)
        if template is None:
            named = [k for k in self.nodes if k != "*" and k.casefold() == hostname.casefold()]
            template = self.nodes[named[0]] if named else self.nodes.get("*")
        if template is None or ("{addr}" in template and not addr):
            return None
        return _fill_node_url(template, hostname, addr)

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: dict[str, str]) -> dict[str, str]:
        for key, path in value.items():
            for p in (key, path):
                if not host_path_ok(p):
                    raise ValueError(f"paths: {p!r} {HOST_PATH_RULE}")
        return value

    @field_validator("docker_host")
    @classmethod
    def _docker_host(cls, value: str) -> str:
        problem = docker_url_problem(value)
        if problem:
            raise ValueError(f"docker_host {problem}")
        return value

    @model_validator(mode="after")
    def _tls_for_tcp(self) -> Site:
        urls = [self.docker_host, *self.nodes.values()]
        if self.tls is not None and not any(u.startswith("tcp://") for u in urls):
            raise ValueError("tls applies to tcp:// endpoints, and this site has none")
        return self

    @field_validator("ssh_config")
    @classmethod
    def _ssh_config(cls, value: str | None) -> str | None:
        if value is not None and (not host_path_ok(value) or any(ord(c) < 32 for c in value)):
            raise ValueError(f"ssh_config: {value[:80]!r} {HOST_PATH_RULE}, on one line")
        return value

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, value: dict[str, str]) -> dict[str, str]:
        for key, url in value.items():
            if key != "*" and not _NODE_NAME.match(key):
                raise ValueError(f'nodes: {key[:80]!r} is not a hostname, nor "*"')
            try:
                fields = [
                    name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
                    for _, name, spec, conv in string.Formatter().parse(url)
                    if name is not None
                ]
            except ValueError:  # a lone { or }
                raise ValueError(
                    f"nodes.{key}: {url[:80]!r} has a {{ or }} without its pair"
                ) from None
            unknown = [f for f in fields if f not in NODE_URL_PLACEHOLDERS]
            if unknown:
                raise ValueError(
                    f"nodes.{key}: unknown placeholder {{{unknown[0]}}} in {url[:80]!r} (only "
                    + " and ".join(f"{{{p}}}" for p in NODE_URL_PLACEHOLDERS)
                    + " are replaced)"
                )
            problem = docker_url_problem(_fill_node_url(url, "node-1", "10.0.0.1"))
            if problem:
                raise ValueError(f"nodes.{key}: {url[:80]!r} {problem}")
        return value


#: the placeholders of a site's `nodes` URLs
NODE_URL_PLACEHOLDERS = ("hostname", "addr")
_NODE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
DOCKER_URL_RULE = (
    "must be a URL like unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host"
)


def docker_url_problem(url: str) -> str | None:
    """What is wrong with a Docker endpoint URL (None: a scheme drplan speaks, with
    something after it; an ssh:// one strictly user, host and port)."""
    scheme, sep, rest = url.partition("://")
    if not (sep and scheme in DOCKER_HOST_SCHEMES and rest):
        return DOCKER_URL_RULE
    if scheme == "ssh":
        try:
            parse_ssh_url(url)
        except ValueError as exc:
            return f"is not a usable ssh URL: {exc}"
    return None


def engine_on_this_host(url: str) -> bool:
    """Whether a Docker URL names an engine of drplan's own host (a unix socket, or tcp
    to a loopback address), which then sees this host's paths: a local repository."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return True
    host = (parts.hostname or "").lower()
    return parts.scheme == "tcp" and (
        host == "localhost" or host == "::1" or host.startswith("127.")
    )


def _fill_node_url(template: str, hostname: str, addr: str) -> str:
    """A `nodes` URL with its placeholders replaced; an IPv6 address goes in brackets."""
    if ":" in addr and not addr.startswith("["):
        addr = f"[{addr}]"
    return template.replace("{hostname}", hostname).replace("{addr}", addr)


# --- repositories --------------------------------------------------------------------

_REPO_PREFIXES = {"sftp:": "sftp", "rest:": "rest", "s3:": "s3", "local:": "local"}


def repository_type(url: str) -> str | None:
    """The restic backend of a repository URL, or None if drplan does not support it."""
    for prefix, kind in _REPO_PREFIXES.items():
        if url.startswith(prefix):
            return kind
    if url.startswith(("/", "./", "../")) or re.match(r"^[A-Za-z]:[\\/]", url):
        return "local"
    return None


class Repository(Strict):
    """A restic repository: the primary one backups go to, or an off-site copy."""

    url: str = Field(
        description="restic repository string: `/srv/restic/x` (local), "
        "`sftp:user@host:/path`, `rest:https://host:8000/x`, `s3:https://s3.host/bucket/x`."
    )
    type: Literal["local", "sftp", "rest", "s3"] | None = Field(
        None, description="Backend; inferred from `url` when omitted."
    )
    role: Literal["primary", "copy"] = Field(
        "copy",
        description="`primary` receives the backups; `copy` repositories get `restic copy` "
        "of each snapshot (off-site).",
    )
    append_only: bool = Field(
        False,
        description="The repository refuses deletions (rest-server `--append-only`): "
        "ransomware on the primary site cannot erase it; pruning runs elsewhere.",
    )
    password: Secret = Field(description="Where the repository password comes from.")
    env: dict[EnvName, Secret] = Field(
        default_factory=dict,
        description="Extra environment for restic (e.g. `AWS_ACCESS_KEY_ID`), each a secret "
        "reference.",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="restic extended options, passed as `-o key=value` to every restic "
        "command on this repository, e.g. `sftp.command: ssh -F /etc/drplan/ssh_config "
        "backup-host -s sftp` or `s3.storage-class: STANDARD_IA`.",
    )
    shared: bool = Field(
        False,
        description="A local path on shared storage (NFS...) mounted at the same path on "
        "drplan's host and on every node of the sites: volume copies run restic in a "
        "helper on the node holding the data, which then binds this path. Without it, a "
        "local repository serves only engines on drplan's own host (`unix://`).",
    )
    description: str = Field("", description="Free text: where it is, who can reach it.")

    @model_validator(mode="after")
    def _type_matches_url(self) -> Repository:
        inferred = repository_type(self.url)
        if inferred is None:
            raise ValueError(
                "unsupported repository url: use a local path, sftp:..., rest:... or s3:..."
            )
        if self.type is not None and self.type != inferred:
            raise ValueError(f"type {self.type} does not match the url (a {inferred} url)")
        self.type = inferred
        if self.shared and inferred != "local":
            raise ValueError(f"shared applies to a local path, not to a {inferred} repository")
        return self


# --- checks and hooks ------------------------------------------------------------------


class _CheckBase(Strict):
    name: str | None = Field(None, description="Short label shown in reports.")
    timeout: Duration = Field(10.0, description="Time limit of one attempt.")
    retries: int = Field(3, ge=1, le=1000, description="Attempts before the check fails.")
    interval: Duration = Field(5.0, description="Pause between attempts.")


class HttpCheck(_CheckBase):
    """An HTTP request, run from a helper container on the stack's network."""

    type: Literal["http"] = Field(description="Check kind.")
    url: str = Field(description="URL; service names resolve, e.g. `http://web:8080/health`.")
    method: Literal["GET", "HEAD", "POST"] = Field("GET", description="HTTP method.")
    status: int = Field(200, ge=100, le=599, description="Expected HTTP status.")
    body_contains: str | None = Field(None, description="Text the response body must contain.")


class TcpCheck(_CheckBase):
    """A TCP connection, run from a helper container on the stack's network."""

    type: Literal["tcp"] = Field(description="Check kind.")
    host: str = Field(description="Host name (a service name resolves).")
    port: int = Field(ge=1, le=65535, description="TCP port.")


class SqlCheck(_CheckBase):
    """A query against one of the service's database sources."""

    type: Literal["sql"] = Field(description="Check kind.")
    query: str = Field(description="Query to run, e.g. `SELECT count(*) FROM users`.")
    expect: str | None = Field(
        None, description="Expected value of the first column of the first row, as text."
    )
    source: str | None = Field(
        None, description="Data source to query (default: the service's first database)."
    )


class CommandCheck(_CheckBase):
    """A command, run in the service's container (or on the recovery host)."""

    type: Literal["command"] = Field(description="Check kind.")
    command: str | list[str] = Field(description="Command line (string for a shell) or argv.")
    where: Literal["container", "host"] = Field(
        "container", description="Run in a container of the service or on the host."
    )
    expect_exit: int = Field(0, description="Expected exit status.")
    expect_output: str | None = Field(None, description="Text stdout must contain.")


class DockerCheck(_CheckBase):
    """Wait for the Docker health status (the image's HEALTHCHECK) or running tasks."""

    type: Literal["docker"] = Field(description="Check kind.")


Check = Annotated[
    HttpCheck | TcpCheck | SqlCheck | CommandCheck | DockerCheck,
    Field(discriminator="type"),
]
CHECK_TYPES = ("http", "tcp", "sql", "command", "docker")


class Hook(Strict):
    """A command run around a backup or a restore (its output is kept when it fails)."""

    run: str | list[str] = Field(description="Command line (string for a shell) or argv.")
    where: Literal["container", "host"] = Field(
        "container",
        description="`container`: in a running container of the service (its image needs "
        "`sh`); `host`: on the host running drplan, in the plan's folder.",
    )
    timeout: Duration = Field(
        300.0, description="Time limit: the hook is then killed, and counts as failed."
    )


class Hooks(Strict):
    """Commands around backup and restore of a service, each list run in order.

    A failing `before_*` hook stops the next ones and fails what it precedes; `after_*`
    hooks are each tried whatever fails. Hooks see `DRPLAN_HOOK`, `DRPLAN_SERVICE`,
    `DRPLAN_STACK`, `DRPLAN_SITE` and `DRPLAN_RUN`, and no secret of drplan's.
    """

    before_backup: list[Hook] = Field(
        default_factory=list,
        description="Before the backup of its data and of the services it depends on "
        "starts (e.g. maintenance mode on); if one fails, those are not backed up.",
    )
    after_backup: list[Hook] = Field(
        default_factory=list,
        description="Once those backups have ended, whether they succeeded or not (e.g. "
        "maintenance mode off); a failure fails the run, its data stays usable.",
    )
    before_restore: list[Hook] = Field(
        default_factory=list,
        description="Before its data is restored. In its container only when all its data "
        "is replayed into its running server (database dumps): files are put back before "
        "it starts.",
    )
    after_restore: list[Hook] = Field(
        default_factory=list,
        description="After its data is restored and it is healthy, before its checks and "
        "before the services depending on it start (e.g. purge caches).",
    )


class Objectives(Strict):
    """Recovery objectives. The most specific wins: service, then tier, then plan."""

    rto: Duration | None = Field(
        None, description="Recovery time objective: longest acceptable outage."
    )
    rpo: Duration | None = Field(
        None, description="Recovery point objective: longest acceptable window of lost data."
    )


# --- services --------------------------------------------------------------------------


class DataSource(Strict):
    """Data a service owns: a database or files, and how to back it up."""

    engine: EngineName = Field(
        description="What the data is: the name of one of drplan's engines (the list "
        "here), each a module of `drplan.sources`."
    )
    method: Method = Field(
        "dump",
        description="`dump`: live native dump (pg_dump, mariadb-dump, redis BGSAVE, sqlite "
        ".backup, a file copy); `cold`: scale the service to 0, copy the volume, scale back.",
    )
    volume: str | None = Field(
        None, description="Compose volume holding the data (required for `cold`)."
    )
    bind: str | None = Field(
        None,
        description="Host directory holding the data, instead of a `volume`: the source of "
        "a bind mount of the service (`/srv/app/uploads` for `/srv/app/uploads:/uploads`, or "
        "for `./uploads:/uploads` beside the compose file), an absolute path on the node of "
        "the site's engine. `engine: files` only. A helper container on that engine mounts "
        "it read-only for the backup; a recovery restores it to the directory the recovery "
        "site's `paths` maps it to (default: the same path), refuses a non-empty one without "
        "--force, and deploys the stack binding that directory.",
    )
    path: str | None = Field(
        None,
        description="Path inside the container: the data directory, or the database file for "
        "sqlite.",
    )
    databases: list[str] = Field(
        default_factory=list, description="Databases to dump (default: all)."
    )
    user: str | None = Field(None, description="Database user for dumps and SQL checks.")
    password: Secret | None = Field(None, description="Database password reference.")
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns left out of file backups."
    )
    size_hint: Size | None = Field(
        None, description="Expected size, used to estimate restore time before any drill."
    )
    description: str = Field("", description="Free text.")

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str | None) -> str | None:
        if value is not None and not host_path_ok(value):
            raise ValueError(f"bind {HOST_PATH_RULE}; got {value[:80]!r}")
        return value


class Service(Strict):
    """A service of the stack, as the recovery sees it."""

    description: str = Field("", description="What it is, for the crisis cell.")
    tier: Tier = Field("P2", description="Priority tier: P1 first (vital), P2, P3 (can wait).")
    critical: bool = Field(
        True,
        description="A failed recovery of a critical service fails the recovery; optional "
        "ones are reported and skipped.",
    )
    depends_on: list[str] = Field(
        default_factory=list,
        description="Services that must be healthy before this one starts.",
    )
    data: dict[Name, DataSource] = Field(default_factory=dict, description="Data sources, by name.")
    health: Check | None = Field(
        None,
        description="When the service counts as up (default: its tasks are running).",
    )
    checks: list[Check] = Field(
        default_factory=list,
        description="Validation after recovery: does it serve the right data?",
    )
    hooks: Hooks = Field(default_factory=Hooks, description="Commands around backup/restore.")
    objectives: Objectives = Field(
        default_factory=Objectives, description="Objectives of this service."
    )


# --- backup ------------------------------------------------------------------------------


class BackupSchedule(Strict):
    """When backups run: every interval, or once a day at a time. Exactly one."""

    every: Duration | None = Field(None, description="Interval between backups, e.g. `6h`.")
    daily_at: str | None = Field(
        None,
        pattern=r"^([01]?\d|2[0-3]):[0-5]\d$",
        description="Daily time `HH:MM` (local time of the backup host).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> BackupSchedule:
        if (self.every is None) == (self.daily_at is None):
            raise ValueError("give exactly one of every or daily_at")
        if self.every is not None and self.every < 60:
            raise ValueError("backups cannot run more often than every minute")
        return self

    @property
    def interval_s(self) -> float:
        """Worst-case time between two backups: the best RPO the schedule can give."""
        return self.every if self.every is not None else 86400.0


class Retention(Strict):
    """How many snapshots to keep (restic `forget` policy)."""

    keep_last: int = Field(0, ge=0, description="Most recent snapshots to keep.")
    keep_daily: int = Field(7, ge=0, description="Daily snapshots to keep.")
    keep_weekly: int = Field(0, ge=0, description="Weekly snapshots to keep.")
    keep_monthly: int = Field(0, ge=0, description="Monthly snapshots to keep.")


class CheckPolicy(Strict):
    """How often `drplan serve` checks the repository, and how much data it reads."""

    every: Duration = Field(7 * 86400.0, description="Interval between checks (default: weekly).")
    read_data_subset: str | None = Field(
        "5%",
        pattern=r"^(\d+(\.\d+)?%|\d+/\d+)$",
        description="Part of the data each check reads back (restic `--read-data-subset`, "
        "e.g. `5%` or `1/7`); null reads only the structure.",
    )

    @field_validator("every")
    @classmethod
    def _not_too_often(cls, value: float) -> float:
        if value < 60:
            raise ValueError("checks cannot run more often than every minute")
        return value


class Backup(Strict):
    """Backup policy of the stack."""

    schedule: BackupSchedule = Field(
        default_factory=lambda: BackupSchedule(daily_at="03:00"),
        description="When backups run (default: daily at 03:00).",
    )
    retention: Retention = Field(default_factory=Retention, description="What to keep.")
    repository: str | None = Field(
        None, description="Repository backups go to (default: the primary one)."
    )
    copy_offsite: bool = Field(
        True,
        description="`drplan serve`: copy each new run to the off-site repositories "
        "(role `copy`) right after it.",
    )
    prune_every: Duration = Field(
        86400.0,
        description="`drplan serve`: how often retention (`drplan prune`) runs, after a backup.",
    )
    check: CheckPolicy = Field(
        default_factory=CheckPolicy,
        description="`drplan serve`: repository integrity checks.",
    )


class Drills(Strict):
    """Drills `drplan serve` runs on its own, recorded as `drplan drill` records them."""

    every: Duration | None = Field(
        None, description="Interval between drills, e.g. `30d` (default: none scheduled)."
    )
    site: Name | None = Field(
        None, description="Recovery site drilled on (default: the first recovery site)."
    )
    profile: Name = Field("full", description="Profile drilled (default: `full`).")

    @field_validator("every")
    @classmethod
    def _not_too_often(cls, value: float | None) -> float | None:
        if value is not None and value < 60:
            raise ValueError("drills cannot run more often than every minute")
        return value


NotificationEvent = Literal[
    "run_failed", "rpo_at_risk", "rpo_breached", "drill", "check_failed", "daemon"
]
NOTIFICATION_EVENTS: tuple[str, ...] = NotificationEvent.__args__  # type: ignore[attr-defined]


class Notification(Strict):
    """Where `drplan serve` tells people: an Apprise URL (mailto://, mmost://, slack://,
    msteams://, ntfy://, json:// ...), a secret since it carries tokens."""

    url: Secret = Field(description="Apprise URL, as a secret reference (`{env: NAME}`...).")
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(NOTIFICATION_EVENTS),
        description="Events sent: `run_failed`, `rpo_at_risk`, `rpo_breached`, `drill`, "
        "`check_failed`, `daemon` (default: all).",
    )
    rpo_warning: float = Field(
        0.8, gt=0, lt=1, description="RPO share past which `rpo_at_risk` is sent."
    )


# --- profiles, risks, crisis cell ----------------------------------------------------------


class Profile(Strict):
    """A degraded "minimum viable" recovery: these services and what they depend on."""

    description: str = Field("", description="When to use it.")
    services: list[str] = Field(
        min_length=1,
        description="Services to bring back; every dependency must be listed too.",
    )
    objectives: Objectives = Field(
        default_factory=Objectives, description="Objectives of this profile."
    )


class Risk(Strict):
    """An entry of the risk register (probability and impact on four-level scales)."""

    id: Name = Field(description="Short identifier, unique in the register.")
    event: str = Field(description="The feared event, e.g. `Datacenter fire`.")
    description: str = Field("", description="Scenario and consequences.")
    probability: Probability = Field(
        description="`very_low`, `low`, `medium`, `high` (très faible … fort)."
    )
    impact: Impact = Field(description="`low`, `medium`, `high`, `very_high`.")
    triggers_plan: bool = Field(description="Whether this event activates the recovery plan.")
    mitigation: str = Field("", description="What reduces it today.")


class Person(Strict):
    """Someone in the crisis cell, with ways to reach them."""

    name: str = Field(description="Full name.")
    organisation: str = Field("", description="Team or organisation.")
    phone: str | None = Field(None, description="Phone number.")
    email: str | None = Field(None, description="E-mail address.")
    chat: str | None = Field(None, description="Chat handle or room.")


class Roles(Strict):
    """The four roles of the crisis cell; each lists people ids, first is the lead."""

    direction: list[str] = Field(
        default_factory=list, description="Decides: activation, priorities, communication."
    )
    technical_coordination: list[str] = Field(
        default_factory=list, description="Runs the technical recovery."
    )
    communication: list[str] = Field(
        default_factory=list, description="Informs users, management, partners."
    )
    user_support: list[str] = Field(
        default_factory=list, description="Answers users, collects tickets."
    )


class ServiceDownCriterion(Strict):
    """Activate when services stay down."""

    kind: Literal["service_down"] = Field(description="Criterion kind.")
    services: list[str] = Field(
        default_factory=list, description="Services watched (default: every critical one)."
    )
    duration: Duration = Field(900.0, description="How long they must stay down.")
    description: str = Field("", description="Free text.")


class TicketsCriterion(Strict):
    """Activate when support tickets pile up."""

    kind: Literal["tickets"] = Field(description="Criterion kind.")
    threshold: int = Field(ge=1, description="Number of tickets.")
    window: Duration = Field(description="Within this time window.")
    count_command: str | None = Field(
        None, description="Command printing the number of tickets opened in the window."
    )
    description: str = Field("", description="Free text.")


class CommandCriterion(Strict):
    """Activate when a probe command fails (exits non-zero)."""

    kind: Literal["command"] = Field(description="Criterion kind.")
    command: str = Field(description="Shell command; a non-zero exit status activates.")
    description: str = Field("", description="Free text.")


Criterion = Annotated[
    ServiceDownCriterion | TicketsCriterion | CommandCriterion,
    Field(discriminator="kind"),
]


class CrisisCell(Strict):
    """Who decides and acts when the plan is activated, and when it is."""

    people: dict[Name, Person] = Field(description="Members, by id.")
    roles: Roles = Field(description="Who holds which role.")
    activation: list[Criterion] = Field(
        default_factory=list, description="When the cell is convened (any criterion)."
    )
    bridge: str = Field("", description="Where the cell meets (room, phone bridge, chat).")


# --- the plan --------------------------------------------------------------------------------


class Stack(Strict):
    """The Docker Swarm stack this plan recovers."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=63, description="Stack name."
    )
    compose: list[str] = Field(
        min_length=1, description="Compose file(s), relative to the plan file."
    )

    @field_validator("compose", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class Plan(Strict):
    """A disaster-recovery plan for one Docker Swarm stack."""

    version: Literal[1] = Field(1, description="Plan format version.")
    description: str = Field("", description="What this plan covers.")
    stack: Stack = Field(description="The stack and its compose files.")
    sites: dict[Name, Site] = Field(
        min_length=1, description="Docker endpoints: one primary, recovery sites."
    )
    repositories: dict[Name, Repository] = Field(
        min_length=1, description="restic repositories: one primary, off-site copies."
    )
    services: dict[Name, Service] = Field(description="Services of the stack.")
    backup: Backup = Field(default_factory=Backup, description="Backup schedule and retention.")
    objectives: Objectives = Field(
        default_factory=Objectives, description="Objectives of the whole plan."
    )
    tiers: dict[Tier, Objectives] = Field(
        default_factory=dict, description="Objectives per tier (P1, P2, P3)."
    )
    profiles: dict[Name, Profile] = Field(
        default_factory=dict,
        description="Degraded recovery profiles; `full` (every service) is implicit.",
    )
    risks: list[Risk] = Field(default_factory=list, description="Risk register.")
    crisis_cell: CrisisCell | None = Field(None, description="The crisis cell.")
    drills: Drills = Field(
        default_factory=lambda: Drills(), description="Drills `drplan serve` runs on its own."
    )
    notifications: list[Notification] = Field(
        default_factory=list, description="Who `drplan serve` notifies, and of what."
    )

    # -- convenience used by validation and scheduling --

    def effective_objective(self, service: str, which: str) -> tuple[float | None, tuple[str, ...]]:
        """The RTO or RPO that applies to a service, and where it is set (a ``loc``)."""
        svc = self.services[service]
        own = getattr(svc.objectives, which)
        if own is not None:
            return own, ("services", service, "objectives", which)
        tier = self.tiers.get(svc.tier)
        if tier is not None and getattr(tier, which) is not None:
            return getattr(tier, which), ("tiers", svc.tier, which)
        return getattr(self.objectives, which), ("objectives", which)

    def primary_repository(self) -> str | None:
        """Name of the repository backups go to."""
        if self.backup.repository:
            return self.backup.repository
        return next((n for n, r in self.repositories.items() if r.role == "primary"), None)
