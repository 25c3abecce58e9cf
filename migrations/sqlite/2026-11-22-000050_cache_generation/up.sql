-- A gateway's cache generation: part of every cache key the data plane builds. An update that changes the settings
-- of a gateway with `cache_invalidate_on_update` raises it in the same statement as the settings, so every entry
-- cached under the old settings becomes unreachable at once, on every node, without deleting anything (entries
-- expire by their TTL). Existing gateways start at 0, the value documents without the field are read as. BIGINT,
-- as elsewhere in these migrations, has SQLite's INTEGER affinity: a 64-bit integer, as on PostgreSQL.
ALTER TABLE gateways ADD COLUMN cache_generation BIGINT NOT NULL DEFAULT 0;
