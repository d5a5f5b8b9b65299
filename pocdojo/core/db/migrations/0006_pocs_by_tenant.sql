-- POCs partitioned by tenant.
--
-- At a million POCs a search spent most of its time in posting lists and heap pages it did
-- not need: a GIN index leading with tenant_id (btree_gin) still intersects the tenant's list
-- with a tag's or a trigram's list over every tenant, and one tenant's rows were spread over
-- as many heap pages as it had rows. Hash partitions on tenant_id give each tenant a table
-- (and indexes) shared with only a few others, so those lists are ~64 times shorter and a
-- tenant's rows sit together. Queries name the tenant as a parameter (besides the policy), so
-- the planner prunes to one partition before planning.
--
-- The primary key becomes (tenant_id, id): ids are random UUIDs minted by the server, and
-- every reference to a POC already goes through (tenant_id, id).

DROP VIEW pocs_scoped;
ALTER TABLE favorites DROP CONSTRAINT favorites_tenant_id_poc_id_fkey;
ALTER TABLE dojo_sessions DROP CONSTRAINT dojo_sessions_tenant_id_poc_id_fkey;
ALTER TABLE pocs RENAME TO pocs_unpartitioned;

CREATE TABLE pocs (
    id             uuid         NOT NULL,
    tenant_id      uuid         NOT NULL REFERENCES tenants (id),
    user_id        uuid         NOT NULL,
    title          varchar(200) NOT NULL,
    description    text         NOT NULL,
    language       varchar(50)  NOT NULL,
    tags           text[]       NOT NULL CHECK (cardinality(tags) BETWEEN 1 AND 20),
    repository_url varchar(500),
    documentation  text,
    status         varchar(20)  NOT NULL DEFAULT 'active'
                                CHECK (status IN ('active', 'archived', 'deleted')),
    view_count     bigint       NOT NULL DEFAULT 0 CHECK (view_count >= 0),
    favorite_count integer      NOT NULL DEFAULT 0 CHECK (favorite_count >= 0),
    created_at     timestamptz  NOT NULL DEFAULT now(),
    updated_at     timestamptz  NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    -- Title words weigh most, then the description, then the documentation.
    search         tsvector GENERATED ALWAYS AS (
                       setweight(to_tsvector('english'::regconfig, title), 'A')
                       || setweight(to_tsvector('english'::regconfig, description), 'B')
                       || setweight(to_tsvector('english'::regconfig, coalesce(documentation, '')), 'C')
                   ) STORED,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
) PARTITION BY HASH (tenant_id);

DO $$
BEGIN
    FOR i IN 0..63 LOOP
        EXECUTE format(
            'CREATE TABLE pocs_p%s PARTITION OF pocs FOR VALUES WITH (MODULUS 64, REMAINDER %s)',
            lpad(i::text, 2, '0'), i);
    END LOOP;
END
$$;

-- Copied a tenant at a time, oldest first, so each tenant's rows are stored together. The
-- tag counts in poc_tags are already right, so the counting trigger is added afterwards.
INSERT INTO pocs (id, tenant_id, user_id, title, description, language, tags, repository_url,
                  documentation, status, view_count, favorite_count, created_at, updated_at,
                  deleted_at)
    SELECT id, tenant_id, user_id, title, description, language, tags, repository_url,
           documentation, status, view_count, favorite_count, created_at, updated_at, deleted_at
    FROM pocs_unpartitioned ORDER BY tenant_id, created_at, id;
DROP TABLE pocs_unpartitioned;

-- Every read filters by tenant and skips deleted POCs, so the indexes lead with tenant_id
-- (btree_gin lets GIN indexes do so) and leave deleted rows out.
CREATE INDEX pocs_tenant_created_idx ON pocs (tenant_id, created_at DESC, id)
    WHERE status <> 'deleted';
CREATE INDEX pocs_tenant_owner_idx ON pocs (tenant_id, user_id, created_at DESC)
    WHERE status <> 'deleted';
CREATE INDEX pocs_tenant_language_idx ON pocs (tenant_id, language, created_at DESC)
    WHERE status <> 'deleted';
CREATE INDEX pocs_tenant_popularity_idx ON pocs (tenant_id, favorite_count DESC, view_count DESC)
    WHERE status <> 'deleted';
CREATE INDEX pocs_title_trgm_idx ON pocs USING gin (tenant_id, title gin_trgm_ops)
    WHERE status <> 'deleted';
CREATE INDEX pocs_tags_idx ON pocs USING gin (tenant_id, tags) WHERE status <> 'deleted';
CREATE INDEX pocs_search_idx ON pocs USING gin (tenant_id, search) WHERE status <> 'deleted';

CREATE TRIGGER pocs_count_tags AFTER INSERT OR UPDATE OF tags, status OR DELETE ON pocs
    FOR EACH ROW EXECUTE FUNCTION pocs_count_tags();

ALTER TABLE favorites ADD FOREIGN KEY (tenant_id, poc_id) REFERENCES pocs (tenant_id, id);
ALTER TABLE dojo_sessions ADD FOREIGN KEY (tenant_id, poc_id) REFERENCES pocs (tenant_id, id);

ALTER TABLE pocs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pocs
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
GRANT SELECT, INSERT, UPDATE ON pocs TO pocdojo_app;

-- As in migration 0004.
CREATE VIEW pocs_scoped AS
    SELECT * FROM pocs WHERE tenant_id = app_tenant_id();
GRANT SELECT ON pocs_scoped TO pocdojo_app;

ANALYZE pocs;
