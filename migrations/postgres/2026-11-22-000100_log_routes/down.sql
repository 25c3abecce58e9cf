DROP INDEX IF EXISTS logs_gateway_route;
ALTER TABLE logs DROP COLUMN route_path;
ALTER TABLE logs DROP COLUMN route_version_id;
ALTER TABLE logs DROP COLUMN route_id;
