DROP INDEX IF EXISTS logs_search_trgm;
CREATE INDEX logs_search_trgm ON logs
    USING gin ((lower(provider || ' ' || coalesce(model, '') || ' ' || path)) gin_trgm_ops);
