"""Settings: read from the environment, overridden by CLI options, validated, frozen, secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from pocdojo.core.errors import ConfigError
from pocdojo.core.settings import JWT_SECRET_FILE, Settings

GOOD_SECRET = "s3cret-" + "k" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the environment the suite runs in."""
    fields = set(Settings.model_fields)
    for name in list(os.environ):
        if name.lower() in fields:
            monkeypatch.delenv(name)


def test_load_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("HOST", "192.0.2.10")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ACCESS_TOKEN_TTL", "600")
    monkeypatch.setenv("TRUST_FORWARDED_FOR", "true")
    monkeypatch.setenv("LOG_JSON", "false")
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6380/2")
    settings = Settings.load()
    assert settings.port == 9123
    assert settings.host == "192.0.2.10"
    assert settings.data_dir == tmp_path
    assert settings.access_token_ttl == 600
    assert settings.trust_forwarded_for is True
    assert settings.log_json is False
    assert settings.require_redis_url() == "redis://cache.internal:6380/2"
    assert settings.embedded_redis is False
    assert settings.embedded_database is True


def test_defaults_without_environment() -> None:
    settings = Settings.load()
    assert settings.port == 8080
    assert settings.host == "127.0.0.1"
    assert settings.jwt_secret is None
    assert settings.embedded_database
    assert settings.embedded_redis


def test_cli_overrides_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("HOST", "192.0.2.10")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "from-env"))
    settings = Settings.load(port=9200, host=None, data_dir=tmp_path / "from-cli")
    assert settings.port == 9200
    assert settings.data_dir == tmp_path / "from-cli"
    # None means "option not given": the environment's value stays.
    assert settings.host == "192.0.2.10"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("ACCESS_TOKEN_TTL", "1"),
        ("MAX_BODY_BYTES", "-5"),
        ("TRUST_FORWARDED_FOR", "perhaps"),
        ("ARGON2_TIME_COST", "0"),
    ],
)
def test_invalid_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        Settings.load()


def test_invalid_cli_override_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="PORT"):
        Settings.load(port=-1)


def test_inconsistent_pool_bounds_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_MIN", "5")
    monkeypatch.setenv("DB_POOL_MAX", "2")
    with pytest.raises(ConfigError) as info:
        Settings.load()
    assert "db_pool_min" in str(info.value).lower()
    assert "db_pool_max" in str(info.value).lower()


def test_a_redis_cluster_needs_its_url_and_a_job_redis_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    with pytest.raises(ConfigError, match="redis_url"):
        Settings.load()
    monkeypatch.setenv("REDIS_URL", "redis://shard-1:6379/0")
    with pytest.raises(ConfigError, match="job_redis_url"):
        Settings.load()
    monkeypatch.setenv("JOB_REDIS_URL", "redis://jobs:6379/0")
    settings = Settings.load()
    assert settings.redis_cluster
    assert settings.require_job_redis_url() == "redis://jobs:6379/0"


def test_external_database_needs_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner@db.internal/pocdojo")
    settings = Settings.load()
    assert not settings.embedded_database
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        settings.with_jwt_secret(embedded=False)


@pytest.mark.parametrize("embedded", [False, True])
def test_short_jwt_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, embedded: bool
) -> None:
    monkeypatch.setenv("JWT_SECRET", "x" * 31)
    settings = Settings.load(data_dir=tmp_path)
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        settings.with_jwt_secret(embedded=embedded)
    assert not (tmp_path / JWT_SECRET_FILE).exists()


def test_configured_jwt_secret_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = "y" * 32
    monkeypatch.setenv("JWT_SECRET", secret)
    resolved = Settings.load(data_dir=tmp_path).with_jwt_secret(embedded=True)
    assert resolved.require_jwt_secret() == secret
    assert not (tmp_path / JWT_SECRET_FILE).exists()


def test_embedded_mode_generates_a_private_secret_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = Settings.load(data_dir=data_dir).with_jwt_secret(embedded=True)
    secret = first.require_jwt_secret()
    path = data_dir / JWT_SECRET_FILE
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == secret
    assert len(secret) >= 32

    again = Settings.load(data_dir=data_dir).with_jwt_secret(embedded=True)
    assert again.require_jwt_secret() == secret

    other = Settings.load(data_dir=tmp_path / "other").with_jwt_secret(embedded=True)
    assert other.require_jwt_secret() != secret


@pytest.mark.parametrize("content", ["", "\n", "short-secret"], ids=["empty", "newline", "short"])
def test_embedded_secret_file_too_short_is_refused(tmp_path: Path, content: str) -> None:
    # A truncated or hand-edited file must not become an empty or weak signing key.
    (tmp_path / JWT_SECRET_FILE).write_text(content)
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.load(data_dir=tmp_path).with_jwt_secret(embedded=True)


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    database = "postgresql://owner:db-pass-7731@db.internal/pocdojo"
    app = "postgresql://pocdojo_app:app-pass-9024@db.internal/pocdojo"
    redis = "redis://:redis-pass-5518@cache.internal:6379/0"
    jwt = "jwt-secret-value-" + "q" * 32
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("DATABASE_APP_URL", app)
    monkeypatch.setenv("REDIS_URL", redis)
    monkeypatch.setenv("JWT_SECRET", jwt)
    settings = Settings.load(data_dir=tmp_path)
    assert settings.require_database_url() == database
    assert settings.require_redis_url() == redis
    assert settings.require_jwt_secret() == jwt
    resolved = settings.with_engines(
        database_url=database, database_app_url=app, redis_url=redis
    ).with_jwt_secret(embedded=False)
    for shown in (settings, resolved):
        for text in (repr(shown), str(shown), shown.model_dump_json()):
            for secret in ("db-pass-7731", "app-pass-9024", "redis-pass-5518", jwt):
                assert secret not in text


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path, port=9000)
    with pytest.raises(ValidationError):
        settings.port = 9001  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.jwt_secret = SecretStr("z" * 40)  # type: ignore[misc]
    assert settings.port == 9000
    assert settings.jwt_secret is None

    resolved = settings.with_engines(
        database_url="postgresql://a@b/c", database_app_url=None, redis_url="redis://r:1/0"
    )
    assert resolved.database_url is not None
    assert settings.database_url is None


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="NO_SUCH_OPTION"):
        Settings.load(no_such_option=1)
