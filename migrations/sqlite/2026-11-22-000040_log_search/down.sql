-- PostgreSQL adds a trigram index for the logs `search` here. SQLite has no such index type; the embedded
-- deployment's gateways are small enough for a scan. Kept so both backends list the same migrations.
SELECT 1;
