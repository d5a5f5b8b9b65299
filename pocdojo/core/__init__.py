"""Settings, database, tenancy, security, engines, logging and metrics: what the rest uses."""
