-- The dynamic route that chose a request's model (issue 15): the route's id, the deployed version's id, and the
-- element ids the request walked (`start>tier>gold`). No index here, unlike PostgreSQL's `logs_gateway_route`: the
-- embedded log writer pays for every index of `logs` on every row, on the proxy's core, and the `route_id` filter
-- walks the time index (`logs_gateway_created`) newest first until the page is full, as `user_id` and `team_id` do.
ALTER TABLE logs ADD COLUMN route_id TEXT;
ALTER TABLE logs ADD COLUMN route_version_id TEXT;
ALTER TABLE logs ADD COLUMN route_path TEXT;
