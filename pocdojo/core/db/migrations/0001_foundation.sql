-- Foundation: tenants, users, login sessions, audit log, and the row-level security that
-- isolates tenants. The application connects as pocdojo_app, which owns nothing, so every
-- policy below binds it; the tenant comes from the per-transaction setting app.tenant_id.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pocdojo_app') THEN
        CREATE ROLE pocdojo_app LOGIN;
    END IF;
END
$$;
-- Lets an owner that is not a superuser connect with role=pocdojo_app (see core/db).
GRANT pocdojo_app TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO pocdojo_app;

CREATE FUNCTION app_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE TABLE tenants (
    id            uuid PRIMARY KEY,
    name          varchar(100) NOT NULL,
    domain        varchar(100) NOT NULL,
    contact_email varchar(254) NOT NULL,
    plan          varchar(20)  NOT NULL CHECK (plan IN ('standard', 'premium', 'enterprise')),
    status        varchar(20)  NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    max_users     integer      NOT NULL CHECK (max_users > 0),
    max_pocs      integer      NOT NULL CHECK (max_pocs > 0),
    features      text[]       NOT NULL DEFAULT '{}',
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenants_domain_key ON tenants (lower(domain));

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    tenant_id     uuid         NOT NULL REFERENCES tenants (id),
    username      varchar(50)  NOT NULL,
    email         varchar(100) NOT NULL,
    full_name     varchar(100),
    password_hash text         NOT NULL,
    role          varchar(20)  NOT NULL CHECK (role IN ('admin', 'user', 'viewer')),
    is_active     boolean      NOT NULL DEFAULT true,
    last_login    timestamptz,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    -- Lets other tables reference (tenant_id, user_id), so a row can never point at a user
    -- of another tenant.
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX users_tenant_username_key ON users (tenant_id, lower(username));
CREATE UNIQUE INDEX users_tenant_email_key ON users (tenant_id, lower(email));

-- A login session is one refresh-token family: every refresh rotates the token inside it,
-- and revoking the session ends the family and every access token that names it.
CREATE TABLE auth_sessions (
    id             uuid PRIMARY KEY,
    tenant_id      uuid         NOT NULL,
    user_id        uuid         NOT NULL,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    last_used_at   timestamptz  NOT NULL DEFAULT now(),
    expires_at     timestamptz  NOT NULL,
    revoked_at     timestamptz,
    revoked_reason varchar(50),
    ip_address     varchar(45),
    user_agent     varchar(500),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (tenant_id, user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    session_id uuid        NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE audit_log (
    id          uuid PRIMARY KEY,
    tenant_id   uuid         NOT NULL REFERENCES tenants (id),
    user_id     uuid,
    action      varchar(50)  NOT NULL,
    entity_type varchar(50)  NOT NULL,
    entity_id   uuid,
    ip_address  varchar(45),
    user_agent  varchar(500),
    request_id  varchar(64)  NOT NULL,
    metadata    jsonb,
    created_at  timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_created_idx ON audit_log (tenant_id, created_at DESC);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = app_tenant_id()) WITH CHECK (id = app_tenant_id());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());

ALTER TABLE auth_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON auth_sessions
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());

GRANT SELECT, INSERT, UPDATE ON tenants, users, auth_sessions TO pocdojo_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON refresh_tokens TO pocdojo_app;
-- The audit log is append-only for the application.
GRANT SELECT, INSERT ON audit_log TO pocdojo_app;

-- Login names a tenant by id or by domain before any tenant is set; this is the one lookup
-- that crosses tenants, and it reveals only the id of an active tenant.
CREATE FUNCTION app_resolve_tenant(ref text) RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
BEGIN
    IF ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        RETURN (SELECT id FROM tenants WHERE id = ref::uuid AND status = 'active');
    END IF;
    RETURN (SELECT id FROM tenants WHERE lower(domain) = lower(ref) AND status = 'active');
END
$$;
REVOKE ALL ON FUNCTION app_resolve_tenant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_resolve_tenant(text) TO pocdojo_app;
