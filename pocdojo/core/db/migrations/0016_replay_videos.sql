-- Replay videos: a recorded dojo's code as it changed, with the recording's voice, rendered
-- by a job of kind 'replay_video' into a row of ``videos`` like a yearly video, so its status
-- and download come from the same route. A replay names its recording and has no year or
-- template; a yearly video has both and no recording.

ALTER TABLE videos
    ADD COLUMN recording_id uuid,
    ALTER COLUMN year DROP NOT NULL,
    ALTER COLUMN template DROP NOT NULL,
    ADD CONSTRAINT videos_recording_fkey
        FOREIGN KEY (tenant_id, recording_id) REFERENCES dojo_recordings (tenant_id, id),
    ADD CONSTRAINT videos_kind_check CHECK (
        CASE WHEN recording_id IS NULL THEN year IS NOT NULL AND template IS NOT NULL
             ELSE year IS NULL AND template IS NULL END
    );

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check,
    ADD CONSTRAINT jobs_kind_check
        CHECK (kind IN ('report', 'video', 'email', 'recording', 'replay_video'));
