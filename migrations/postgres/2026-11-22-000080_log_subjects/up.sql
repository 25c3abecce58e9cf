-- The virtual key that authenticated a request, and the key's user and team (issue 14): ids only, never a secret.
-- Nullable and without a default, so adding them rewrites no row. One index serves the logs API's `key_id` filter
-- (equality, then the default order for the page); `user_id` and `team_id` filters walk the time index
-- (`logs_gateway_created`) and stop at the page's last match, which is enough while a user's or team's requests
-- are a fair share of a gateway's. Every index is paid for on every insert, so no more than that.
ALTER TABLE logs ADD COLUMN key_id TEXT;
ALTER TABLE logs ADD COLUMN user_id TEXT;
ALTER TABLE logs ADD COLUMN team_id TEXT;
CREATE INDEX logs_gateway_key ON logs (account_id, gateway_id, key_id, created_at DESC, id DESC);
