-- Recordings of a dojo's voice. The host starts and stops one (at most one runs per
-- session); each node holding a participant's events socket records that participant's
-- audio to a part of its own, uploaded when the recording stops, with its start offset from
-- the recording's start; a job then mixes the parts into the recording's audio files.

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
    start_offset   real        NOT NULL CHECK (start_offset >= 0),
    object_key     text        NOT NULL,
    bytes          bigint      NOT NULL CHECK (bytes >= 0),
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
GRANT SELECT, INSERT ON dojo_recording_parts TO pocdojo_app;
