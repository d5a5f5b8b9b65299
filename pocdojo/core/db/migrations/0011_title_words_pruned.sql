-- Title words are pruned: the worker removes, tenant by tenant, the words that no live title
-- holds any more (left by deleted and renamed POCs), so the table stays the size of the
-- tenant's vocabulary however often titles change.
--
-- A prune must not remove a word that a writer still in flight relies on: the trigger adds
-- nothing for a word that is already there, so a POC committed after the prune read the
-- titles would be left without its word. Writers therefore hold a shared advisory lock on
-- their tenant's words until they commit, and a prune takes it exclusively: it waits for
-- the writers in flight, reads the titles with them committed, and writers that come later
-- wait for the prune (about 20 ms for a tenant of 10,000 POCs on a slow 2-core machine).

CREATE FUNCTION title_words_lock(tenant uuid) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT hashtextextended('poc_title_words:' || tenant::text, 0)
$$;

CREATE OR REPLACE FUNCTION pocs_collect_title_words() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(title_words_lock(NEW.tenant_id));
    -- Sorted, so concurrent writers adding the same new words wait in one order.
    INSERT INTO poc_title_words (tenant_id, word)
        SELECT NEW.tenant_id, w FROM poc_title_words_of(NEW.title) AS w ORDER BY w
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- Prunes the words of the transaction's tenant (app_tenant_id()); returns how many went.
-- It runs as the caller, so row-level security confines it to that tenant. Each statement
-- of a volatile function reads a fresh snapshot: the DELETE sees every title committed
-- before the lock was granted.
CREATE FUNCTION prune_title_words() RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    removed integer;
BEGIN
    IF app_tenant_id() IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(title_words_lock(app_tenant_id()));
    DELETE FROM poc_title_words w
    WHERE w.tenant_id = app_tenant_id()
      AND w.word NOT IN (
          SELECT poc_title_words_of(p.title) FROM pocs p
          WHERE p.tenant_id = app_tenant_id() AND p.status <> 'deleted');
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;

-- The worker's pruner looks across tenants for the ones that have words, a batch at a time
-- in the order of their ids (after: the last one of the previous batch, or NULL to start);
-- it sees only their ids, and prunes each under its own tenant's setting.
CREATE FUNCTION app_title_word_tenants(after uuid, max_count integer)
    RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
        SELECT t.id FROM tenants t
        WHERE (after IS NULL OR t.id > after)
          AND EXISTS (SELECT 1 FROM poc_title_words w WHERE w.tenant_id = t.id)
        ORDER BY t.id
        LIMIT max_count
    $$;
REVOKE ALL ON FUNCTION app_title_word_tenants(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_title_word_tenants(uuid, integer) TO pocdojo_app;

GRANT DELETE ON poc_title_words TO pocdojo_app;
