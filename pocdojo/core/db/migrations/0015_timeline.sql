-- A recording's code timeline: the document states nodes held when the recording began (or
-- when they loaded the room during it), then every update accepted while it ran, each with
-- the server time it arrived and its author when the node that accepted it stored it. Rows
-- are written with the update log, in the same transaction (see ``pocdojo.crdt.timeline``).

CREATE TABLE dojo_timeline (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recording_id uuid        NOT NULL,
    tenant_id    uuid        NOT NULL,
    at           timestamptz NOT NULL,
    state        boolean     NOT NULL DEFAULT false,
    author       uuid,
    data         bytea       NOT NULL,
    FOREIGN KEY (tenant_id, recording_id) REFERENCES dojo_recordings (tenant_id, id),
    FOREIGN KEY (tenant_id, author) REFERENCES users (tenant_id, id)
);
CREATE INDEX dojo_timeline_recording_idx ON dojo_timeline (recording_id, at);

ALTER TABLE dojo_timeline ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dojo_timeline
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());

GRANT SELECT, INSERT ON dojo_timeline TO pocdojo_app;
