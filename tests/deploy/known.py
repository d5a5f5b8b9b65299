"""What pocdojo reads from its environment, for the checks of deployment files."""

from __future__ import annotations

from pocdojo.core.settings import Settings

# The S3 store's endpoint, region and credentials are boto3's own variables (README: "Files").
BOTO3_VARIABLES = frozenset(
    {
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
)


def settings_variables() -> set[str]:
    """The environment variables ``Settings`` reads: its fields' names in upper case."""
    prefix = Settings.model_config.get("env_prefix", "") or ""
    return {(prefix + name).upper() for name in Settings.model_fields}


def known_variables() -> set[str]:
    """Every variable a pocdojo process may be given."""
    return settings_variables() | BOTO3_VARIABLES
