-- `search` in the logs list matches a term anywhere in id, provider, model or path (case-insensitive). A plain
-- B-tree cannot serve `LIKE '%term%'`, so at millions of rows every search read the whole gateway. One trigram
-- index over the four fields joined serves terms of three characters or more; the query repeats this exact
-- expression (store/logs/query.rs, SEARCH_DOCUMENT) next to the per-field test, which keeps the answer exact.
-- pg_trgm ships with PostgreSQL and is a trusted extension (a database owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX logs_search_trgm ON logs
    USING gin ((lower(id || ' ' || provider || ' ' || coalesce(model, '') || ' ' || path)) gin_trgm_ops);
