-- Tenant-scoped views for search.
--
-- Row-level security keeps a policy's condition ahead of any condition of the query whose
-- operator is not leak-proof, and ILIKE, pg_trgm's <%, && on arrays and @@ on tsvectors are
-- not. So under the policy alone, the GIN indexes on title, tags and the tsvector are never
-- used: every search reads all of the tenant's POCs (hundreds of milliseconds at a million).
--
-- These views apply the same tenant condition as the policies (the transaction's
-- app.tenant_id; no tenant set, no rows) in their own definition. They belong to the schema
-- owner, so the policies are not applied a second time, and they are not security barriers,
-- so the planner combines the tenant condition with the search conditions into one index scan.
-- The application role can only read them, and cannot create functions that could observe
-- rows before the tenant condition filters them.

DO $$
BEGIN
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;  -- the default since PostgreSQL 15
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'could not revoke CREATE on schema public; make sure pocdojo_app lacks it';
END
$$;

CREATE VIEW pocs_scoped AS
    SELECT * FROM pocs WHERE tenant_id = app_tenant_id();

CREATE VIEW poc_tags_scoped AS
    SELECT * FROM poc_tags WHERE tenant_id = app_tenant_id();

GRANT SELECT ON pocs_scoped, poc_tags_scoped TO pocdojo_app;
