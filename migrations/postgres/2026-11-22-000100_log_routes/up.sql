-- The dynamic route that chose a request's model (issue 15): the route's id, the deployed version's id, and the
-- element ids the request walked (`start>tier>gold`). Nullable without a default, so adding them rewrites no row.
-- One index serves the logs API's `route_id` filter (equality, then the default order for the page).
ALTER TABLE logs ADD COLUMN route_id TEXT;
ALTER TABLE logs ADD COLUMN route_version_id TEXT;
ALTER TABLE logs ADD COLUMN route_path TEXT;
CREATE INDEX logs_gateway_route ON logs (account_id, gateway_id, route_id, created_at DESC, id DESC);
