"""One frozen, typed settings object, read once from the environment and CLI options.

Every value has an environment variable named after it in upper case (``DATABASE_URL``,
``JWT_SECRET``, ``ACCESS_TOKEN_TTL``...). CLI options override the environment. Secrets are
``SecretStr`` so they never print.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pocdojo.core.errors import ConfigError

JWT_SECRET_FILE = "jwt_secret"


class Settings(BaseSettings):
    """Everything the server, the worker and the CLI need to know, fixed at start."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", case_sensitive=False)

    data_dir: Path = Path(".pocdojo")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)

    # Engines: unset means "start the embedded one under data_dir".
    database_url: SecretStr | None = None
    database_app_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    # The job queue's Redis, when it is not ``redis_url`` (e.g. a plain Redis beside a bus
    # that grows to several): workers and enqueuing servers must agree on it.
    job_redis_url: SecretStr | None = None
    # ``redis_url`` names a node of a Redis Cluster: rooms spread over its shards. The job
    # queue needs one Redis of its own then (``job_redis_url``).
    redis_cluster: bool = False
    object_store_url: str | None = None
    opensearch_url: str | None = None

    # Tokens.
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "pocdojo"
    access_token_ttl: int = Field(15 * 60, ge=10, le=24 * 3600)
    refresh_token_ttl: int = Field(30 * 24 * 3600, ge=60)

    # Password hashing cost (argon2id). Defaults follow RFC 9106's second recommendation.
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(64 * 1024, ge=8)
    argon2_parallelism: int = Field(1, ge=1)

    # Limits.
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=1)
    login_fail_limit_account: int = Field(5, ge=1)
    login_fail_limit_ip: int = Field(30, ge=1)
    login_fail_window: int = Field(15 * 60, ge=1)
    signup_limit_ip: int = Field(10, ge=1)
    signup_window: int = Field(3600, ge=1)
    requests_per_minute_user: int = Field(1200, ge=1)
    trust_forwarded_for: bool = False

    # Stopping (SIGTERM): /readyz answers 503 and new sockets are refused for ``drain_delay``
    # seconds while everything else is still served (so a load balancer's health checks take
    # the node out first); then the listener closes, rooms are stored, sockets close with
    # 1001, and in-flight requests and jobs get until ``drain_timeout`` to finish.
    drain_delay: float = Field(0.0, ge=0, le=300)
    drain_timeout: float = Field(30.0, gt=0, le=3600)

    poc_cache_ttl: int = Field(60, ge=1)
    view_flush_interval: float = Field(2.0, gt=0)
    title_words_prune_interval: float = Field(6 * 3600, gt=0)

    # Dojo rooms.
    participant_token_ttl: int = Field(12 * 3600, ge=60)
    ws_max_message_bytes: int = Field(1024 * 1024, ge=1024)
    ws_max_document_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    ws_updates_per_second: float = Field(200.0, gt=0)
    ws_update_burst: int = Field(400, ge=1)
    ws_max_queued_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    ws_chat_per_minute: int = Field(120, ge=1)
    ws_max_awareness_bytes: int = Field(64 * 1024, ge=1024)
    ws_signals_per_second: float = Field(50.0, gt=0)
    ws_signal_burst: int = Field(200, ge=1)
    ws_sockets_per_user: int = Field(10, ge=2)
    dojo_persist_interval: float = Field(0.2, gt=0, le=5)
    dojo_compact_every: int = Field(500, ge=1)
    dojo_history_interval: float = Field(60.0, gt=0)
    dojo_idle_unload: float = Field(30.0, ge=0)
    chat_backlog: int = Field(50, ge=0, le=500)

    # Voice: the ICE servers handed to dojo participants (comma-separated URLs). TURN
    # credentials are made per user by the TURN REST API convention under ``turn_secret``
    # (coturn's ``static-auth-secret``) and last ``turn_ttl`` seconds.
    stun_urls: Annotated[list[str], NoDecode] = []
    turn_urls: Annotated[list[str], NoDecode] = []
    turn_secret: SecretStr | None = None
    turn_ttl: int = Field(6 * 3600, ge=60, le=7 * 24 * 3600)

    # Files the server hands out (reports, videos) and the links to them.
    public_url: str | None = None
    download_url_ttl: int = Field(15 * 60, ge=10, le=7 * 24 * 3600)

    # Jobs (arq): ``pocdojo serve`` runs a worker in-process unless ``worker`` is false.
    worker: bool = True
    job_queue: str = "pocdojo:jobs"
    worker_concurrency: int = Field(2, ge=1, le=64)
    job_max_tries: int = Field(4, ge=1, le=20)
    job_retry_delay: float = Field(5.0, ge=0)
    job_timeout: int = Field(30 * 60, ge=1)
    job_heartbeat_interval: float = Field(5.0, gt=0)
    # How long a recording's mixing waits for every node to upload its parts after the stop;
    # a part still missing then (its node died) is left out of the mix.
    recording_upload_wait: float = Field(30.0, gt=0)
    job_stall_after: float = Field(60.0, gt=0)

    # Emails.
    email_backend: Literal["outbox", "smtp", "ses"] = "outbox"
    smtp_url: SecretStr | None = None
    ses_region: str | None = None
    email_from: str = "pocdojo <no-reply@pocdojo.localhost>"
    emails_per_hour_tenant: int = Field(1000, ge=1)

    # Garbage collection (see pocdojo/core/gctune.py); 0 turns the tuning off.
    gc_freeze_every: float = Field(5.0, ge=0)
    gc_full_every: float = Field(600.0, gt=0)

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("stun_urls", "turn_urls", mode="before")
    @classmethod
    def _url_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @model_validator(mode="after")
    def _turn_needs_a_secret(self) -> Self:
        if self.turn_urls and self.turn_secret is None:
            raise ValueError("turn_urls needs turn_secret (the TURN server's shared secret)")
        for url in self.stun_urls:
            if not url.startswith(("stun:", "stuns:")):
                raise ValueError(f"stun_urls: {url!r} is not a stun: or stuns: URL")
        for url in self.turn_urls:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"turn_urls: {url!r} is not a turn: or turns: URL")
        return self

    @model_validator(mode="after")
    def _cluster_needs_urls(self) -> Self:
        if self.redis_cluster and self.redis_url is None:
            raise ValueError("redis_cluster needs redis_url (a node of the cluster)")
        if self.redis_cluster and self.job_redis_url is None:
            raise ValueError(
                "redis_cluster needs job_redis_url: the job queue runs on one Redis, not a cluster"
            )
        return self

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("db_pool_min must not exceed db_pool_max")
        if self.job_stall_after <= 2 * self.job_heartbeat_interval:
            raise ValueError("job_stall_after must exceed twice job_heartbeat_interval")
        return self

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the environment, apply CLI overrides (``None`` means "not given").

        Raises:
            ConfigError: a value is missing or invalid; the message names the variable.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'_'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"invalid settings: {problems}") from exc

    @property
    def embedded_database(self) -> bool:
        """True when the server starts its own PostgreSQL under ``data_dir``."""
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        """True when the server starts its own Valkey under ``data_dir``."""
        return self.redis_url is None

    def with_engines(
        self, *, database_url: str, database_app_url: str | None, redis_url: str
    ) -> Settings:
        """Return a copy pointing at engines that were started for us."""
        return self.model_copy(
            update={
                "database_url": SecretStr(database_url),
                "database_app_url": SecretStr(database_app_url) if database_app_url else None,
                "redis_url": SecretStr(redis_url),
            }
        )

    def with_jwt_secret(self, embedded: bool) -> Settings:
        """Resolve the JWT secret.

        In embedded mode a secret is generated once and kept in the data directory, so tokens
        survive restarts; otherwise ``JWT_SECRET`` must be set.

        Raises:
            ConfigError: no secret and not embedded, or the secret is too short.
        """
        if self.jwt_secret is not None:
            if len(self.jwt_secret.get_secret_value()) < 32:
                raise ConfigError("JWT_SECRET must be at least 32 characters long")
            return self
        if not embedded:
            raise ConfigError(
                "JWT_SECRET is not set: it is required when DATABASE_URL points at an external "
                "database (generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        path = self.data_dir / JWT_SECRET_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Written whole under a temporary name, then linked into place: a crash leaves no
            # half-written file, and of two starts racing, the first link wins for both.
            tmp = path.with_name(f".{JWT_SECRET_FILE}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        secret = path.read_text().strip()
        if len(secret) < 32:
            raise ConfigError(
                f"JWT_SECRET: the secret in {path} is shorter than 32 characters; "
                "delete the file to have a new one generated"
            )
        return self.model_copy(update={"jwt_secret": SecretStr(secret)})

    def require_jwt_secret(self) -> str:
        """The JWT signing secret; settings must have been resolved first."""
        if self.jwt_secret is None:
            raise ConfigError("JWT_SECRET is not set")
        return self.jwt_secret.get_secret_value()

    def require_database_url(self) -> str:
        """The owner connection string (migrations)."""
        if self.database_url is None:
            raise ConfigError("DATABASE_URL is not set")
        return self.database_url.get_secret_value()

    @property
    def base_url(self) -> str:
        """Where clients reach this server, for links it signs (``PUBLIC_URL`` or host:port)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def signing_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` derived from the JWT secret, so one secret signs nothing twice."""
        return hmac.new(self.require_jwt_secret().encode(), purpose.encode(), "sha256").digest()

    def require_redis_url(self) -> str:
        """The Redis connection string."""
        if self.redis_url is None:
            raise ConfigError("REDIS_URL is not set")
        return self.redis_url.get_secret_value()

    def require_job_redis_url(self) -> str:
        """The job queue's Redis: ``JOB_REDIS_URL``, else ``REDIS_URL``."""
        if self.job_redis_url is not None:
            return self.job_redis_url.get_secret_value()
        return self.require_redis_url()
