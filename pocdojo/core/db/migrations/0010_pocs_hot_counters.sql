-- View and favorite counts change without touching any index (heap-only updates).
--
-- Every POC read is counted, and the counts reach the row at each view flush. The counters
-- were in pocs_tenant_popularity_idx, so each such update wrote a new entry into all eight
-- indexes of the row, three of them GIN (tags, title trigrams, text lexemes: some 70
-- entries): 300-400 us of PostgreSQL CPU per POC, and index bloat that searches then read.
-- An update that changes no indexed column and finds room on its page is heap-only (HOT):
-- no index is written.
--
-- Nothing uses that index: a search collects its hits first and sorts them afterwards, and
-- the video job orders by an expression. So it goes, and the partitions keep a tenth of
-- each new page free for the next version of its rows. Pages written before keep no room
-- until their rows' first update moves them; the room then left is reused.

DROP INDEX pocs_tenant_popularity_idx;

DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'pocs'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 90)', part);
    END LOOP;
END
$$;
