-- One statement starts an authenticated request: it scopes the transaction to the token's
-- tenant and reads the user behind the token's session. Done as two statements, that was a
-- round trip more on every request.
--
-- Not SECURITY DEFINER: it runs as the caller (pocdojo_app), so the session and user rows are
-- read under the row-level policies, with the tenant it has just set (PL/pgSQL runs its
-- statements in order). A token naming another tenant than its session's finds nothing.

CREATE FUNCTION app_request_principal(p_tenant uuid, p_session uuid, p_user uuid)
    RETURNS TABLE (user_id uuid, tenant_id uuid, role varchar, username varchar, session_id uuid)
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    RETURN QUERY
        SELECT u.id, u.tenant_id, u.role, u.username, s.id
        FROM auth_sessions s JOIN users u ON u.id = s.user_id
        WHERE s.id = p_session AND s.user_id = p_user AND s.revoked_at IS NULL
          AND s.expires_at > now() AND u.is_active;
END
$$;

REVOKE ALL ON FUNCTION app_request_principal(uuid, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_request_principal(uuid, uuid, uuid) TO pocdojo_app;
