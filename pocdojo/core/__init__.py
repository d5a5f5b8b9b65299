"""What every front uses: settings, database, tenancy, security, engines, logging, metrics,
and the HTTP plumbing (declared operations and their OpenAPI document, the request pipeline)."""
