-- `search` in the logs list matches a term anywhere in id, provider, model or path (case-insensitive). A plain
-- B-tree cannot serve `LIKE '%term%'`, so at millions of rows every search read the whole gateway. One trigram
-- index over provider, model and path joined serves terms of three characters or more; the query repeats this
-- exact expression (store/logs/query.rs, SEARCH_DOCUMENT) next to the per-field test, which keeps the answer exact.
-- The id is left out: ULIDs are random, so each would add ~24 trigrams found in no other row, making the index
-- large and every insert slower; a term can only be part of an id when it is made of ULID characters alone, and
-- only such terms test the id (by scan).
-- pg_trgm ships with PostgreSQL and is a trusted extension (a database owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX logs_search_trgm ON logs
    USING gin ((lower(provider || ' ' || coalesce(model, '') || ' ' || path)) gin_trgm_ops);
