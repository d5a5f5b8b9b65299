-- Dojo sessions: who takes part, the collaborative document (update log, compacted
-- snapshots, code history) and the chat.

CREATE TABLE dojo_sessions (
    id               uuid PRIMARY KEY,
    tenant_id        uuid         NOT NULL REFERENCES tenants (id),
    poc_id           uuid         NOT NULL,
    host_user_id     uuid         NOT NULL,
    title            varchar(200) NOT NULL,
    description      text,
    language         varchar(50),
    max_participants integer      NOT NULL CHECK (max_participants BETWEEN 2 AND 50),
    join_code        varchar(12)  NOT NULL,
    status           varchar(20)  NOT NULL DEFAULT 'created'
                                  CHECK (status IN ('created', 'active', 'ended')),
    scheduled_at     timestamptz,
    started_at       timestamptz,
    ended_at         timestamptz,
    recording_url    varchar(500),
    created_at       timestamptz  NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, poc_id) REFERENCES pocs (tenant_id, id),
    FOREIGN KEY (tenant_id, host_user_id) REFERENCES users (tenant_id, id),
    UNIQUE (tenant_id, id)
);
CREATE INDEX dojo_sessions_open_idx ON dojo_sessions (tenant_id, status, scheduled_at)
    WHERE status <> 'ended';

CREATE TABLE dojo_participants (
    session_id uuid        NOT NULL,
    tenant_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    role       varchar(20) NOT NULL CHECK (role IN ('host', 'participant', 'observer')),
    joined_at  timestamptz NOT NULL DEFAULT now(),
    left_at    timestamptz,
    PRIMARY KEY (session_id, user_id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES dojo_sessions (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

-- Accepted Yjs updates in arrival order; compaction folds a prefix into one snapshot.
CREATE TABLE dojo_updates (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id uuid        NOT NULL,
    tenant_id  uuid        NOT NULL,
    data       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, session_id) REFERENCES dojo_sessions (tenant_id, id)
);
CREATE INDEX dojo_updates_session_idx ON dojo_updates (session_id, seq);

-- The whole document state as of update ``upto_seq`` (one row per session).
CREATE TABLE dojo_snapshots (
    session_id uuid PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    upto_seq   bigint      NOT NULL,
    state      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, session_id) REFERENCES dojo_sessions (tenant_id, id)
);

-- The code as it stood at intervals and at the end: the session's history.
CREATE TABLE dojo_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id uuid        NOT NULL,
    tenant_id  uuid        NOT NULL,
    taken_at   timestamptz NOT NULL DEFAULT now(),
    reason     varchar(20) NOT NULL CHECK (reason IN ('interval', 'end', 'unload')),
    code       text        NOT NULL,
    FOREIGN KEY (tenant_id, session_id) REFERENCES dojo_sessions (tenant_id, id)
);
CREATE INDEX dojo_history_session_idx ON dojo_history (session_id, taken_at);

CREATE TABLE dojo_chat (
    id         uuid PRIMARY KEY,
    session_id uuid          NOT NULL,
    tenant_id  uuid          NOT NULL,
    user_id    uuid          NOT NULL,
    text       varchar(4000) NOT NULL,
    sent_at    timestamptz   NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, session_id) REFERENCES dojo_sessions (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX dojo_chat_session_idx ON dojo_chat (session_id, sent_at DESC, id);

ALTER TABLE dojo_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dojo_sessions
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE dojo_participants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dojo_participants
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE dojo_updates ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dojo_updates
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE dojo_snapshots ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dojo_snapshots
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE dojo_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dojo_history
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
ALTER TABLE dojo_chat ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dojo_chat
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());

GRANT SELECT, INSERT, UPDATE ON dojo_sessions, dojo_participants TO pocdojo_app;
GRANT SELECT, INSERT, DELETE ON dojo_updates TO pocdojo_app;
GRANT SELECT, INSERT, UPDATE ON dojo_snapshots TO pocdojo_app;
GRANT SELECT, INSERT ON dojo_history, dojo_chat TO pocdojo_app;
