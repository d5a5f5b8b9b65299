-- Recordings of a dojo's voice. The host starts and stops one (at most one runs per
-- session); each node holding a participant's events socket records that participant's
-- audio to a part of its own (its row is written when the recording peer is set up, and
-- completed with its offset from the recording's start and its size once uploaded, when the
-- recording stops); a job of kind 'recording' (the recording's id) then mixes the parts.

CREATE TABLE dojo_recordings (
    id            uuid PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    session_id    uuid        NOT NULL,
    started_by    uuid        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz,
    status        varchar(20) NOT NULL DEFAULT 'recording'
                              CHECK (status IN ('recording', 'processing', 'ready', 'failed')),
    participants  uuid[]      NOT NULL DEFAULT '{}',
    ogg_key       text,
    m4a_key       text,
    duration      real,
    error         text,
    FOREIGN KEY (tenant_id, session_id) REFERENCES dojo_sessions (tenant_id, id),
    UNIQUE (tenant_id, id),
    CHECK ((status = 'recording') = (stopped_at IS NULL))
);
CREATE INDEX dojo_recordings_session_idx ON dojo_recordings (session_id, started_at DESC);
-- At most one recording runs per session: starting a second one is refused.
CREATE UNIQUE INDEX dojo_recordings_running_idx ON dojo_recordings (session_id)
    WHERE status = 'recording';

CREATE TABLE dojo_recording_parts (
    recording_id   uuid        NOT NULL,
    tenant_id      uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    start_offset   real        CHECK (start_offset >= 0),  -- NULL until uploaded
    object_key     text        NOT NULL,
    bytes          bigint      CHECK (bytes >= 0),
    PRIMARY KEY (recording_id, object_key),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES dojo_recordings (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

ALTER TABLE dojo_recordings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dojo_recordings
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE dojo_recording_parts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dojo_recording_parts
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());

GRANT SELECT, INSERT, UPDATE ON dojo_recordings TO pocdojo_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON dojo_recording_parts TO pocdojo_app;

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check,
    ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('report', 'video', 'email', 'recording'));
