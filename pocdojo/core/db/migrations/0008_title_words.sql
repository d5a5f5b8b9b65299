-- Misspelled names, found through the words of the tenant's titles.
--
-- Until now a name of four letters or more also matched titles by trigram word similarity
-- (threshold 0.4). For short names that is too loose to mean "a typo": "wind" shares two of
-- its five trigrams with every word starting "wi", so it found every title with "with" in
-- it; at a million POCs such a name collected 1,000-2,000 unrelated titles and computed the
-- similarity of each, which made it the slowest search of all.
--
-- A typo is now what OpenSearch's fuzziness AUTO:4,6 calls one: a word of the title within
-- one edit of a name's word of 4-5 letters, two edits from 6 letters on. The words of each
-- tenant's titles are kept in poc_title_words (a few hundred to a few thousand per tenant),
-- so the search compares the name with those words (levenshtein, from fuzzystrmatch) and
-- finds the titles holding the close ones through the full-text index, restricted to the
-- title's weight.
--
-- Words are added by a trigger and never removed: a word left by a deleted or renamed POC
-- only makes the search look for titles that no longer hold it, which the index answers
-- with nothing. Adding takes no row lock on an existing word, so writers do not queue on
-- common words.

CREATE EXTENSION IF NOT EXISTS fuzzystrmatch;

CREATE TABLE poc_title_words (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    word      text NOT NULL,
    PRIMARY KEY (tenant_id, word)
);

-- The words of a title as the full-text parser splits them, lower-cased and unstemmed
-- ('simple'). Words with a quote or a backslash are left out: they are quoted into a
-- tsquery's text, where those characters would need escaping.
CREATE FUNCTION poc_title_words_of(title text) RETURNS SETOF text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT w FROM unnest(tsvector_to_array(to_tsvector('simple'::regconfig, title))) AS w
    WHERE w !~ '[''\\]'
$$;

CREATE FUNCTION pocs_collect_title_words() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    -- Sorted, so concurrent writers adding the same new words wait in one order.
    INSERT INTO poc_title_words (tenant_id, word)
        SELECT NEW.tenant_id, w FROM poc_title_words_of(NEW.title) AS w ORDER BY w
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER pocs_collect_title_words AFTER INSERT OR UPDATE OF title ON pocs
    FOR EACH ROW EXECUTE FUNCTION pocs_collect_title_words();

INSERT INTO poc_title_words (tenant_id, word)
    SELECT DISTINCT p.tenant_id, w FROM pocs p, poc_title_words_of(p.title) AS w
    WHERE p.status <> 'deleted';

ALTER TABLE poc_title_words ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON poc_title_words
    USING (tenant_id = app_tenant_id()) WITH CHECK (tenant_id = app_tenant_id());
GRANT SELECT, INSERT ON poc_title_words TO pocdojo_app;

ANALYZE poc_title_words;
