"""REST handlers: each route declared as a ``core.api`` operation, which validates its input
and describes it in the OpenAPI document."""
