"""Shared by the benchmarks: a realistic POC vocabulary, POC rows built from it, statistics.

Everything random here draws from a ``random.Random`` the caller seeds, so two runs with the
same seed build the same data and ask the same questions.
"""

from __future__ import annotations

import itertools
import random
import re
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pocdojo.core.languages import LANGUAGES

# --- Vocabulary ------------------------------------------------------------------------------

TECHS: tuple[str, ...] = (
    "Kafka", "Redis", "PostgreSQL", "GraphQL", "gRPC", "Kubernetes", "Terraform", "Prometheus",
    "Grafana", "Elasticsearch", "OpenSearch", "RabbitMQ", "NATS", "Cassandra", "MongoDB",
    "DynamoDB", "S3", "Lambda", "WebAssembly", "WebSocket", "OAuth", "Envoy", "Istio",
    "Linkerd", "Consul", "Vault", "Nomad", "Docker", "Helm", "ArgoCD", "Flink", "Spark",
    "Airflow", "dbt", "Snowflake", "ClickHouse", "DuckDB", "SQLite", "Pulsar", "ZooKeeper",
    "etcd", "Celery", "FastAPI", "Django", "React", "Vue", "Svelte", "Next.js", "Tailwind",
    "Vite", "Webpack", "OpenTelemetry", "Jaeger", "Loki", "Tempo", "Temporal", "Debezium",
    "CockroachDB", "TiDB", "Neo4j", "Memcached", "Nginx", "HAProxy", "Traefik", "Caddy",
    "MinIO", "Ceph", "Valkey", "Keycloak", "Supabase", "Firebase", "Cloudflare Workers",
    "Deno", "Bun", "Node.js", "Spring Boot", "Quarkus", "Ktor", "Phoenix", "Rails",
    "Laravel", "Tokio", "Axum", "Actix", "Pandas", "Polars", "PyTorch", "TensorFlow",
    "LangChain", "pgvector", "Qdrant", "Milvus", "Ollama", "Redpanda", "Kinesis", "BigQuery",
)  # fmt: skip

FEATURES: tuple[str, ...] = (
    "consumer lag", "streams", "federation", "rate limiter", "circuit breaker",
    "connection pool", "schema registry", "change data capture", "dead letter queue",
    "feature flags", "blue-green deploy", "canary rollout", "leader election", "sharding",
    "read replica", "cache warming", "backpressure", "retry policy", "idempotency keys",
    "event sourcing", "CQRS projection", "saga orchestration", "outbox pattern",
    "vector search", "full-text search", "autocomplete", "geo search", "time series rollup",
    "log shipping", "trace sampling", "metrics scraping", "alert routing", "secret rotation",
    "mTLS", "SSO login", "RBAC", "multi-tenant isolation", "webhooks", "file upload",
    "image resize", "PDF export", "CSV import", "batch job", "cron scheduler", "job queue",
    "pub/sub", "presence tracking", "collaborative editing", "CRDT sync", "offline sync",
    "push notifications", "load shedding", "hot reload", "partition rebalancing",
    "exactly-once delivery", "zero-downtime migration", "cold start", "autoscaling",
    "distributed locks", "session storage", "query planner", "materialized views",
    "row-level security", "audit trail", "embeddings", "semantic cache", "prompt routing",
)  # fmt: skip

ARTIFACTS: tuple[str, ...] = (
    "exporter", "catch-up", "gateway", "adapter", "prototype", "spike", "demo", "proxy",
    "sidecar", "operator", "plugin", "dashboard", "client", "SDK", "CLI", "worker",
    "benchmark", "playground", "starter", "template", "bridge", "connector", "sink",
    "harness", "emulator", "mock server", "controller", "middleware", "toolkit", "experiment",
)  # fmt: skip

USE_CASES: tuple[str, ...] = (
    "multi-tenant SaaS", "realtime analytics", "IoT telemetry", "payments", "fraud detection",
    "search relevance", "mobile sync", "internal tooling", "log analytics", "recommendations",
    "chat", "billing", "inventory", "ad serving", "gaming leaderboards", "healthcare records",
)  # fmt: skip

VERBS: tuple[str, ...] = (
    "measures", "exposes", "tracks", "replays", "shards", "caches", "validates", "benchmarks",
    "streams", "batches", "compresses", "deduplicates", "throttles", "encrypts", "migrates",
)  # fmt: skip

LIMITATIONS: tuple[str, ...] = (
    "no TLS yet", "single region only", "schema changes need a restart",
    "backfill is not idempotent", "memory grows with the number of partitions",
    "tested on Linux only", "retries can reorder messages", "no pagination on the admin API",
)  # fmt: skip

UNITS: tuple[str, ...] = ("messages", "requests", "events", "rows", "documents", "writes")

TOPIC_TAGS: tuple[str, ...] = (
    "prototype", "backend", "api", "performance", "security", "observability", "devops", "ci",
    "testing", "scalability", "latency", "caching", "streaming", "batch", "ml", "llm", "ai",
    "data-engineering", "frontend", "mobile", "cloud", "aws", "gcp", "azure", "serverless",
    "edge", "iot", "cli", "rest", "microservices", "monolith", "database", "nosql", "sql",
    "messaging", "queues", "events", "async", "concurrency", "networking", "http2", "http3",
    "quic", "tls", "auth", "oidc", "saml", "compliance", "gdpr", "privacy", "analytics",
    "etl", "elt", "data-lake", "warehouse", "olap", "oltp", "replication", "backup",
    "disaster-recovery", "high-availability", "k8s", "containers", "infra-as-code", "gitops",
    "monitoring", "logging", "tracing", "metrics", "alerting", "sre", "chaos", "load-testing",
    "benchmark", "profiling", "memory", "cpu", "gpu", "wasm", "webassembly", "realtime",
    "websockets", "collaboration", "crdt", "sync", "offline-first", "pwa", "ui", "ux",
    "accessibility", "i18n", "payments", "billing", "search", "recommendations", "nlp",
    "computer-vision", "embeddings", "rag", "agents", "vector-db", "time-series", "geo",
    "graph", "blockchain", "cryptography", "compression", "serialization", "protobuf", "avro",
    "json", "yaml", "codegen", "dx", "tooling", "migration", "legacy", "refactoring", "demo",
    "hackathon", "poc", "spike", "experiment", "internal", "open-source", "multi-tenant",
    "rate-limiting", "resilience", "retries", "idempotency", "consistency", "transactions",
    "sharding", "partitioning", "indexing", "full-text", "autocomplete", "feature-flags",
    "ab-testing", "canary", "blue-green", "zero-downtime", "cost", "finops", "green-it",
)  # fmt: skip

# Share of POCs per language; languages not listed get the minimum weight.
LANGUAGE_WEIGHTS: dict[str, float] = {
    "Python": 22, "TypeScript": 16, "Go": 12, "Java": 10, "JavaScript": 9, "Rust": 6,
    "C#": 5, "Kotlin": 3, "C++": 3, "Ruby": 2, "PHP": 2, "Scala": 1.5, "Elixir": 1.2,
    "Swift": 1.2, "SQL": 1.2, "Bash": 1,
}  # fmt: skip
_MIN_LANGUAGE_WEIGHT = 0.3

FIRST_NAMES = ("Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances")
LAST_NAMES = ("Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie")

USERS_PER_TENANT = 20
VIEWERS_PER_TENANT = 2  # viewers own no POCs
ADMIN_USERNAME = "bench"
PASSWORD = "Bench#Passw0rd"
SEED_YEARS = 3


def slug(text: str) -> str:
    """``Cloudflare Workers`` -> ``cloudflare-workers``."""
    return re.sub(r"[^a-z0-9+#]+", "-", text.lower()).strip("-")


def _tag_vocabulary() -> tuple[str, ...]:
    """About 300 distinct lowercase tags, most popular first: a dozen generic topics, then
    the others in a fixed shuffle."""
    head = TOPIC_TAGS[:12]
    candidates = itertools.chain(
        TOPIC_TAGS[12:],
        (slug(t) for t in TECHS),
        (slug(f) for f in FEATURES[:40]),
        (name.lower() for name in LANGUAGES),
    )
    tail = [t for t in dict.fromkeys(candidates) if t not in head and 0 < len(t) <= 50]
    random.Random(7).shuffle(tail)
    return head + tuple(tail)


TAGS = _tag_vocabulary()


# PostgreSQL's English dictionary drops these: as a search they would match nothing.
_STOP_WORDS = frozenset({"once", "only", "with"})


def words_of(text: str) -> list[str]:
    """The searchable words of ``text``: lowercase letters, four or more, no stop words."""
    found = re.findall(r"[a-z]+", text.lower())
    return [w for w in found if len(w) >= 4 and w not in _STOP_WORDS]


def _words(phrases: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted({w for p in phrases for w in words_of(p)}))


# Words that appear in titles: what a user types into the name box or the search box.
TECH_WORDS = _words(TECHS)
FEATURE_WORDS = _words(FEATURES)
TITLE_WORDS = _words(TECHS + FEATURES + ARTIFACTS)
TEXT_WORDS = (
    *_words(TECHS + FEATURES + USE_CASES + LIMITATIONS + UNITS),
    *("throughput", "latency", "docker", "compose"),
)


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


LANGUAGE_CUM = _cumulative([LANGUAGE_WEIGHTS.get(lang, _MIN_LANGUAGE_WEIGHT) for lang in LANGUAGES])
TAG_CUM = _cumulative([1.0 / rank for rank in range(1, len(TAGS) + 1)])  # Zipf, s = 1
TAG_COUNT_CUM = _cumulative([15, 25, 25, 18, 10, 7])  # 1..6 tags per POC
_TITLE_PATTERN_CUM = _cumulative([5, 2, 1, 1, 2])


def pick_language(rng: random.Random) -> str:
    return rng.choices(LANGUAGES, cum_weights=LANGUAGE_CUM)[0]


def pick_tags(rng: random.Random, k: int) -> list[str]:
    return rng.choices(TAGS, cum_weights=TAG_CUM, k=k)


# --- Tenants, users and POC rows -------------------------------------------------------------


@dataclass(frozen=True)
class BenchUser:
    id: uuid.UUID
    username: str
    role: str


@dataclass(frozen=True)
class BenchTenant:
    index: int
    id: uuid.UUID
    domain: str
    users: tuple[BenchUser, ...]
    owners: tuple[BenchUser, ...]  # the users who register POCs (viewers cannot)


def bench_domain(index: int) -> str:
    return f"bench-{index:03d}.example"


def bench_tenants(count: int) -> list[BenchTenant]:
    """The benchmark's tenants; ids derive from domains so every run agrees on them."""
    tenants = []
    for i in range(count):
        domain = bench_domain(i)
        names = [ADMIN_USERNAME] + [f"dev{n:02d}" for n in range(1, USERS_PER_TENANT)]
        roles = ["admin"] + ["user"] * (USERS_PER_TENANT - 1 - VIEWERS_PER_TENANT)
        roles += ["viewer"] * VIEWERS_PER_TENANT
        users = tuple(
            BenchUser(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}@{domain}"), name, role)
            for name, role in zip(names, roles, strict=True)
        )
        owners = tuple(u for u in users if u.role != "viewer")
        tenant_id = uuid.uuid5(uuid.NAMESPACE_DNS, domain)
        tenants.append(BenchTenant(i, tenant_id, domain, users, owners))
    return tenants


def tenant_row(t: BenchTenant) -> tuple[object, ...]:
    return (t.id, f"Bench Company {t.index:03d}", t.domain, f"ops@{t.domain}", "enterprise")


def user_row(t: BenchTenant, u: BenchUser, password_hash: str) -> tuple[object, ...]:
    full_name = f"{FIRST_NAMES[u.id.int % 8]} {LAST_NAMES[(u.id.int >> 8) % 7]}"
    return (u.id, t.id, u.username, f"{u.username}@{t.domain}", full_name, password_hash, u.role)


POC_COLUMNS: tuple[str, ...] = (
    "id", "tenant_id", "user_id", "title", "description", "language", "tags", "repository_url",
    "documentation", "status", "view_count", "favorite_count", "created_at", "updated_at",
    "deleted_at",
)  # fmt: skip


class PocFactory:
    """Builds realistic POC rows in ``POC_COLUMNS`` order, deterministic for a seed."""

    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.start = now - timedelta(days=365 * SEED_YEARS)

    def title(self) -> tuple[str, str]:
        """A title and the main technology it names."""
        r = self.rng
        tech, feature, artifact = r.choice(TECHS), r.choice(FEATURES), r.choice(ARTIFACTS)
        pattern = r.choices(range(5), cum_weights=_TITLE_PATTERN_CUM)[0]
        if pattern == 0:
            text = f"{tech} {feature} {artifact}"
        elif pattern == 1:
            text = f"{feature} with {tech}"
        elif pattern == 2:
            text = f"{tech} to {r.choice(TECHS)} {artifact}"
        elif pattern == 3:
            text = f"{artifact} for {tech} {feature}"
        else:
            text = f"{tech} {feature}"
        return text[0].upper() + text[1:], tech

    def sentence(self, which: int, tech: str) -> str:
        r = self.rng
        if which == 0:
            artifact, verb, feature = r.choice(ARTIFACTS), r.choice(VERBS), r.choice(FEATURES)
            return f"A small {artifact} that {verb} {feature} on {tech}."
        if which == 1:
            return f"Compares {tech} and {r.choice(TECHS)} for {r.choice(USE_CASES)}."
        if which == 2:
            return (
                f"Handles {r.randint(2, 900)}k {r.choice(UNITS)} per second on one node "
                f"with p99 under {r.randint(2, 200)} ms."
            )
        if which == 3:
            weeks, use = r.randint(1, 4), r.choice(USE_CASES)
            return f"Built during a {weeks}-week spike to evaluate {tech} for {use}."
        if which == 4:
            other, feature, store = r.choice(TECHS), r.choice(FEATURES), r.choice(TECHS)
            return f"Uses {other} for {feature} and {store} for storage."
        if which == 5:
            return "Includes a docker compose setup, a load generator and a Grafana dashboard."
        return f"Known limitation: {r.choice(LIMITATIONS)}."

    def description(self, tech: str) -> str:
        """One to three sentences from templates."""
        picked = self.rng.sample(range(7), self.rng.randint(1, 3))
        return " ".join(self.sentence(which, tech) for which in picked)

    def documentation(self, tech: str) -> str | None:
        r = self.rng
        if r.random() > 0.15:
            return None
        return (
            f"## Setup\n\nRun `docker compose up` then `make bench`.\n\n## Results\n\n"
            f"{tech} sustained {r.randint(1, 500)}k {r.choice(UNITS)}/s; "
            f"{r.choice(LIMITATIONS)}.\n"
        )

    def tags(self, tech: str, language: str) -> list[str]:
        r = self.rng
        wanted = r.choices(range(1, 7), cum_weights=TAG_COUNT_CUM)[0]
        chosen: dict[str, None] = {}
        if r.random() < 0.5:
            chosen[slug(tech)] = None
        if r.random() < 0.25:
            chosen[language.lower()] = None
        while len(chosen) < wanted:
            chosen.update(dict.fromkeys(pick_tags(r, wanted - len(chosen))))
        return list(chosen)[:wanted]

    def row(self, tenant: BenchTenant, owner: BenchUser, fraction: float) -> tuple[object, ...]:
        """One POC row; ``fraction`` (0..1) places it in time, oldest first."""
        r = self.rng
        title, tech = self.title()
        language = pick_language(r)
        span = (self.now - self.start).total_seconds()
        created = self.start + timedelta(seconds=span * fraction + r.uniform(-3600, 3600))
        created = min(created, self.now)
        updated = min(created + timedelta(days=r.expovariate(1 / 10)), self.now)
        views = int(r.lognormvariate(3.0, 1.5))
        favorites = int(views * r.random() ** 3 * 0.1)
        status = r.choices(("active", "archived", "deleted"), weights=(97, 2, 1))[0]
        repository = (
            f"https://git.{tenant.domain}/{owner.username}/{slug(title)}"
            if r.random() < 0.7
            else None
        )
        return (
            uuid.UUID(int=r.getrandbits(128), version=4),
            tenant.id,
            owner.id,
            title,
            self.description(tech),
            language,
            self.tags(tech, language),
            repository,
            self.documentation(tech),
            status,
            views,
            favorites,
            created,
            updated,
            updated if status == "deleted" else None,
        )

    def batch(
        self, tenants: Sequence[BenchTenant], start: int, stop: int, total: int
    ) -> list[tuple[object, ...]]:
        """Rows ``start`` to ``stop`` of ``total``: round robin over tenants and their owners,
        in creation order, so every tenant's POCs are interleaved in time as in production."""
        rows = []
        for i in range(start, stop):
            tenant = tenants[i % len(tenants)]
            owner = tenant.owners[(i // len(tenants)) % len(tenant.owners)]
            rows.append(self.row(tenant, owner, i / total))
        return rows


# --- Statistics ------------------------------------------------------------------------------


def percentiles(samples: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95 and p99 of all samples (nan when there are none)."""
    if not samples:
        return (float("nan"),) * 3
    if len(samples) == 1:
        return (samples[0],) * 3
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]
