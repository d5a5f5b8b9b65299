-- Misspelled-name lookups read only the title words with the name word's first letter and a
-- length within its edits, instead of every word of the tenant.
--
-- Comparing a name word with all of a tenant's words is fine at a few hundred words but not
-- at a large tenant's vocabulary: with 100,000 words one lookup took 190 ms, and 2.9 ms
-- through this index. The price is that a typo in the first letter is not forgiven
-- (OpenSearch is told the same with prefix_length 1), as most spelling tools assume.

CREATE INDEX poc_title_words_initial_idx
    ON poc_title_words (tenant_id, left(word, 1), length(word));
