-- POCs, their tags' counts, favorites, and the outbox that feeds an external search index.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TABLE pocs (
    id             uuid PRIMARY KEY,
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
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
    UNIQUE (tenant_id, id)
);
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

-- How many live POCs carry each tag, kept exact by a trigger: popular tags and tag
-- suggestions read this instead of unnesting every POC.
CREATE TABLE poc_tags (
    tenant_id uuid        NOT NULL REFERENCES tenants (id),
    tag       varchar(50) NOT NULL,
    poc_count integer     NOT NULL CHECK (poc_count >= 0),
    PRIMARY KEY (tenant_id, tag)
);
CREATE INDEX poc_tags_popular_idx ON poc_tags (tenant_id, poc_count DESC) WHERE poc_count > 0;
CREATE INDEX poc_tags_prefix_idx ON poc_tags (tenant_id, tag text_pattern_ops) WHERE poc_count > 0;

CREATE FUNCTION pocs_count_tags() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    old_tags text[] := '{}';
    new_tags text[] := '{}';
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status <> 'deleted' THEN
        old_tags := OLD.tags;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status <> 'deleted' THEN
        new_tags := NEW.tags;
    END IF;
    -- Sorted, so concurrent writers lock tag rows in one order and cannot deadlock.
    INSERT INTO poc_tags AS pt (tenant_id, tag, poc_count)
        SELECT COALESCE(NEW.tenant_id, OLD.tenant_id), t, 1
        FROM unnest(new_tags) AS t WHERE NOT t = ANY (old_tags) ORDER BY t
        ON CONFLICT (tenant_id, tag) DO UPDATE SET poc_count = pt.poc_count + 1;
    UPDATE poc_tags SET poc_count = poc_count - 1
        WHERE tenant_id = COALESCE(NEW.tenant_id, OLD.tenant_id)
          AND tag IN (SELECT t FROM unnest(old_tags) AS t WHERE NOT t = ANY (new_tags) ORDER BY t);
    RETURN NULL;
END
$$;
CREATE TRIGGER pocs_count_tags AFTER INSERT OR UPDATE OF tags, status OR DELETE ON pocs
    FOR EACH ROW EXECUTE FUNCTION pocs_count_tags();

CREATE TABLE favorites (
    id         uuid PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    poc_id     uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id, poc_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
    FOREIGN KEY (tenant_id, poc_id) REFERENCES pocs (tenant_id, id)
);
CREATE INDEX favorites_user_idx ON favorites (tenant_id, user_id, created_at DESC);
CREATE INDEX favorites_poc_idx ON favorites (poc_id);

-- Changes waiting to reach an external search index, written in the same transaction as the
-- change itself; a drainer deletes rows once the index has them. It holds only ids, and the
-- drainer reads across tenants, so it has no row-level policy: the POC data it then reads is
-- fetched under each tenant's own setting.
CREATE TABLE search_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    poc_id     uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts   integer     NOT NULL DEFAULT 0,
    next_try   timestamptz NOT NULL DEFAULT now(),
    last_error text
);
CREATE INDEX search_outbox_due_idx ON search_outbox (next_try, id);

ALTER TABLE pocs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pocs
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE poc_tags ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON poc_tags
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE favorites ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON favorites
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());

GRANT SELECT, INSERT, UPDATE ON pocs TO pocdojo_app;
GRANT SELECT, INSERT, UPDATE ON poc_tags TO pocdojo_app;
GRANT SELECT, INSERT, DELETE ON favorites TO pocdojo_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON search_outbox TO pocdojo_app;
