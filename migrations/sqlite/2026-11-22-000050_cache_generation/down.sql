-- DROP COLUMN needs SQLite 3.35 or newer (the bundled library is newer).
ALTER TABLE gateways DROP COLUMN cache_generation;
