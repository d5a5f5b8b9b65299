"""REST handlers, request validation, error mapping and the OpenAPI document."""
