ALTER TABLE gateways DROP COLUMN cache_generation;
