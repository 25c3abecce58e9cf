-- DROP COLUMN needs SQLite 3.35 or newer (the bundled library is newer).
ALTER TABLE logs DROP COLUMN route_path;
ALTER TABLE logs DROP COLUMN route_version_id;
ALTER TABLE logs DROP COLUMN route_id;
