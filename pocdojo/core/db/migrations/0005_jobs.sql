-- Slow work done off the request path: reports, yearly videos and emails. Every job has one
-- row in ``jobs`` (status, progress, attempts, the last error, a heartbeat while it runs) and
-- one row in the table of its kind with what was asked and what came out.

CREATE TABLE jobs (
    id           uuid PRIMARY KEY,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    user_id      uuid        NOT NULL,
    kind         varchar(20) NOT NULL CHECK (kind IN ('report', 'video', 'email')),
    status       varchar(20) NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
    progress     smallint    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    attempts     integer     NOT NULL DEFAULT 0,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    heartbeat_at timestamptz,
    completed_at timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
    UNIQUE (tenant_id, id)
);
CREATE INDEX jobs_owner_idx ON jobs (tenant_id, user_id, kind, created_at DESC, id);
CREATE INDEX jobs_unfinished_idx ON jobs ((coalesce(heartbeat_at, created_at)))
    WHERE status IN ('queued', 'processing');

CREATE TABLE reports (
    id             uuid PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    report_type    varchar(20) NOT NULL
                               CHECK (report_type IN ('summary', 'detailed', 'analytics', 'usage')),
    start_date     date        NOT NULL,
    end_date       date        NOT NULL CHECK (end_date >= start_date),
    filters        jsonb       NOT NULL DEFAULT '{}',
    format         varchar(10) NOT NULL CHECK (format IN ('pdf', 'xlsx', 'csv', 'json')),
    estimated_time integer,
    object_key     text,
    size_bytes     bigint,
    poc_count      integer,
    FOREIGN KEY (tenant_id, id) REFERENCES jobs (tenant_id, id)
);

CREATE TABLE videos (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid        NOT NULL,
    year               integer     NOT NULL CHECK (year >= 2020),
    include_metrics    boolean     NOT NULL DEFAULT false,
    template           varchar(50) NOT NULL DEFAULT 'default',
    estimated_duration integer,
    duration           real,
    poc_count          integer,
    object_key         text,
    thumbnail_key      text,
    FOREIGN KEY (tenant_id, id) REFERENCES jobs (tenant_id, id)
);

-- Templates are written by each tenant's admins in a sandboxed template language.
CREATE TABLE email_templates (
    tenant_id   uuid         NOT NULL REFERENCES tenants (id),
    template_id varchar(50)  NOT NULL,
    subject     varchar(200) NOT NULL,
    html        text         NOT NULL,
    text        text         NOT NULL,
    created_by  uuid         NOT NULL,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, template_id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
);

CREATE TABLE notifications (
    id          uuid PRIMARY KEY,
    tenant_id   uuid         NOT NULL,
    type        varchar(20)  NOT NULL DEFAULT 'email' CHECK (type IN ('email')),
    recipients  jsonb        NOT NULL,
    template_id varchar(50)  NOT NULL,
    subject     varchar(200),
    data        jsonb        NOT NULL DEFAULT '{}',
    message_ids jsonb        NOT NULL DEFAULT '{}',
    sent_at     timestamptz,
    FOREIGN KEY (tenant_id, id) REFERENCES jobs (tenant_id, id)
);

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON reports
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE videos ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON videos
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE email_templates ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_templates
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notifications
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());

GRANT SELECT, INSERT, UPDATE ON jobs, reports, videos, notifications TO pocdojo_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON email_templates TO pocdojo_app;

-- The worker's sweeper looks across tenants for jobs that stopped moving (a worker killed
-- mid-job, a queue entry lost with Redis). It sees only ids, kinds and counters; the job
-- itself is then read and written under its own tenant's setting.
CREATE FUNCTION app_stalled_jobs(quiet_for interval)
    RETURNS TABLE (id uuid, tenant_id uuid, kind varchar, status varchar, attempts integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
        SELECT j.id, j.tenant_id, j.kind, j.status, j.attempts
        FROM jobs j
        WHERE j.status IN ('queued', 'processing')
          AND coalesce(j.heartbeat_at, j.created_at) < now() - quiet_for
        ORDER BY coalesce(j.heartbeat_at, j.created_at)
        LIMIT 500
    $$;
REVOKE ALL ON FUNCTION app_stalled_jobs(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_stalled_jobs(interval) TO pocdojo_app;
