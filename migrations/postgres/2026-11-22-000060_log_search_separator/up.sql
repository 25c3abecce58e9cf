-- The search document joins provider, model and path with U+001F (the ASCII unit separator) instead of a space.
-- A term without that character can then only match the joined text within one field, so `document LIKE
-- '%term%'` alone is exact and the query no longer repeats the test field by field. That repetition made the
-- planner multiply two selectivities of the same condition: it expected a handful of rows for a term matching a
-- sixth of the table and sorted every match (323 ms for a page at 1M rows) instead of walking the time index and
-- stopping at the page's 20th match (0.3 ms). ANALYZE keeps statistics for the index expression, so its estimate
-- of the single condition is right. store/logs/query.rs, SEARCH_DOCUMENT, repeats this expression exactly.
DROP INDEX IF EXISTS logs_search_trgm;
CREATE INDEX logs_search_trgm ON logs
    USING gin ((lower(provider || E'\x1f' || coalesce(model, '') || E'\x1f' || path)) gin_trgm_ops);
