"""Data stores drplan has no native, consistent method for, as `drplan init` knows them.

Their files copied while they run are not a backup (a search index, a log segment, an LSM
tree or a B-tree caught mid-write), so a drafted plan copies them *cold* (the service
scaled to 0, its volume copied, scaled back) and says what that costs. This is not an
engine (no ``ENGINE``): the copy is the files engine's, wrapped by the cold method; the
files engine asks this table in its ``detect``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drplan.plan.compose import ComposeService
from drplan.sources.base import LiveSigns, image_names, is_client, mounted_dir


@dataclass(frozen=True)
class Store:
    """A store: the words of its images, its data directories, the risk of a live copy,
    and what a running container of it shows (`drplan init --from-stack`)."""

    name: str
    images: tuple[str, ...]
    data_dirs: tuple[str, ...]
    risk: str
    live_signs: LiveSigns = field(default_factory=LiveSigns)


STORES = (
    Store(
        "mongodb",
        ("mongo", "mongodb"),
        ("/data/db", "/bitnami/mongodb"),
        "WiredTiger files copied live are not consistent; mongodump is not run by drplan",
        LiveSigns(("mongod",), (("WiredTiger",), ("mongod.lock",))),
    ),
    Store(
        "clickhouse",
        ("clickhouse",),
        ("/var/lib/clickhouse",),
        "merge tree parts copied live may be half-written",
        LiveSigns(("clickhouse-server", "clickhouse"), (("metadata/", "store/"),)),
    ),
    Store(
        "kafka",
        ("kafka",),
        ("/var/lib/kafka/data", "/bitnami/kafka", "/var/lib/kafka"),
        "log segments and offsets copied live disagree",
    ),
    Store(
        "couchdb",
        ("couchdb",),
        ("/opt/couchdb/data", "/bitnami/couchdb"),
        "database files copied live may be torn",
        LiveSigns((), (("_dbs.couch",),)),
    ),
    Store(
        "influxdb",
        ("influxdb",),
        ("/var/lib/influxdb", "/var/lib/influxdb2"),
        "TSM and WAL files copied live disagree",
        LiveSigns(("influxd",)),
    ),
    Store(
        "rabbitmq",
        ("rabbitmq",),
        ("/var/lib/rabbitmq",),
        "Mnesia and queue files copied live may be torn; in-flight messages",
        LiveSigns(("rabbitmq-server",)),
    ),
    Store(
        "minio",
        ("minio",),
        ("/data", "/minio_data"),
        "objects and their metadata copied live may disagree",
        LiveSigns(("minio",), ((".minio.sys/",),)),
    ),
    Store(
        "elasticsearch",
        ("elasticsearch",),
        ("/usr/share/elasticsearch/data",),
        "Lucene segments copied live are not a snapshot",
    ),
    Store(
        "opensearch",
        ("opensearch",),
        ("/usr/share/opensearch/data",),
        "Lucene segments copied live are not a snapshot",
    ),
    Store(
        "cassandra",
        ("cassandra", "scylla"),
        ("/var/lib/cassandra", "/var/lib/scylla"),
        "SSTables and commit log copied live disagree",
    ),
    Store("neo4j", ("neo4j",), ("/data",), "store files copied live are not consistent"),
    Store(
        "etcd",
        ("etcd",),
        ("/etcd", "/etcd-data", "/var/lib/etcd"),
        "bbolt database copied live may be torn",
        LiveSigns(("etcd",), (("member/",),)),
    ),
    Store(
        "prometheus-tsdb",
        ("prometheus",),
        ("/prometheus",),
        "TSDB head and WAL copied live disagree",
        LiveSigns(("prometheus",)),
    ),
    Store(
        "loki",
        ("loki",),
        ("/loki",),
        "chunks and index copied live disagree",
        LiveSigns(("loki",)),
    ),
    Store("seaweedfs", ("seaweedfs",), ("/data",), "volume files copied live may be torn"),
    Store(
        "milvus",
        ("milvus",),
        ("/var/lib/milvus",),
        "segments copied live disagree with etcd and object storage",
    ),
    Store("solr", ("solr",), ("/var/solr",), "Lucene segments copied live are not a snapshot"),
)


def find_store(svc: ComposeService) -> tuple[Store, str] | None:
    """The store a service runs and the evidence: its image's name (whole words), else
    a store-specific data directory mounted (shared paths such as `/data` do not
    count alone)."""
    for store in STORES:
        if image_names(svc.image, store.images):
            return store, f"image {svc.image!r}"
    if is_client(svc):
        return None
    for store in STORES:
        specific = tuple(d for d in store.data_dirs if d not in ("/data", "/minio_data"))
        path = mounted_dir(svc, specific)
        if path:
            return store, f"data directory {path} mounted"
    return None
