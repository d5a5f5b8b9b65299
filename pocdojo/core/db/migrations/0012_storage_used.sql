-- A tenant's storage used: the bytes of the files its jobs stored in the object store.
--
-- Reports already record their file's size when the worker stores it; videos now record
-- theirs too, the MP4 and its thumbnail together. A tenant's usage is the sum of both, read
-- from an index per table holding the tenant and the size, so it is an index-only scan of
-- the tenant's own entries rather than a scan of every tenant's jobs.
--
-- Videos stored before this migration have no size and count 0 until they are made again:
-- their files are in the object store, which the database cannot ask for sizes. Files are
-- counted while their job's row exists (no route deletes a report or a video), and a file
-- whose job failed after storing it (the job is retried under the same key) has no size.

ALTER TABLE videos ADD COLUMN size_bytes bigint CHECK (size_bytes >= 0);

CREATE INDEX reports_tenant_size_idx ON reports (tenant_id) INCLUDE (size_bytes);
CREATE INDEX videos_tenant_size_idx ON videos (tenant_id) INCLUDE (size_bytes);
