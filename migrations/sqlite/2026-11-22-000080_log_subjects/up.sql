-- The virtual key that authenticated a request, and the key's user and team (issue 14): ids only, never a secret.
-- No index here, unlike PostgreSQL's `logs_gateway_key`: the embedded log writer pays for every index of `logs` on
-- every row it inserts (seven already), on the same core as the proxy, while the logs API's `key_id`, `user_id` and
-- `team_id` filters are served well enough by walking the time index (`logs_gateway_created`) newest first until
-- the page is full; an embedded deployment's gateways hold few enough logs for that.
ALTER TABLE logs ADD COLUMN key_id TEXT;
ALTER TABLE logs ADD COLUMN user_id TEXT;
ALTER TABLE logs ADD COLUMN team_id TEXT;
