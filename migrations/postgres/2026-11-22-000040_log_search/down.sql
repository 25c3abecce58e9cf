DROP INDEX IF EXISTS logs_search_trgm;
