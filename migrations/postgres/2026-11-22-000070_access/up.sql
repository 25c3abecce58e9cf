-- Access control (issue 14): teams, users and virtual keys, each with limits and budgets the data plane enforces.
-- Rows are account-owned and keyed by (account_id, id) like gateways; the ids are UUIDs. A key's user and team,
-- and a user's team, must be of the key's (user's) account: composite foreign keys say so, so that a create racing
-- a delete cannot leave a reference dangling (the API checks first and names the offenders; these are the
-- backstop). A NULL reference is not checked. Only the SHA-256 of a key's secret is stored, never the secret.
CREATE TABLE teams (
    account_id  TEXT   NOT NULL,
    id          TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    metadata    TEXT   NOT NULL CHECK (metadata::jsonb IS NOT NULL),
    limits      TEXT   NOT NULL CHECK (limits::jsonb IS NOT NULL),
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX teams_account_created ON teams (account_id, created_at, id);

CREATE TABLE users (
    account_id  TEXT   NOT NULL,
    id          TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    team_id     TEXT,
    metadata    TEXT   NOT NULL CHECK (metadata::jsonb IS NOT NULL),
    limits      TEXT   NOT NULL CHECK (limits::jsonb IS NOT NULL),
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, team_id) REFERENCES teams (account_id, id)
);
CREATE INDEX users_account_created ON users (account_id, created_at, id);
CREATE INDEX users_team ON users (account_id, team_id);

-- A revoked key keeps its row (revoked_at set) so that the logs that name it still name something; it leaves the
-- config documents and the default listing. `gateways` and `models` are JSON arrays (empty: every gateway of the
-- account, every model); `last_used_at` is written by the log ingest, at most once per key per batch.
CREATE TABLE virtual_keys (
    account_id   TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    secret_hash  TEXT   NOT NULL UNIQUE,
    preview      TEXT   NOT NULL,
    gateways     TEXT   NOT NULL CHECK (gateways::jsonb IS NOT NULL),
    models       TEXT   NOT NULL CHECK (models::jsonb IS NOT NULL),
    user_id      TEXT,
    team_id      TEXT,
    metadata     TEXT   NOT NULL CHECK (metadata::jsonb IS NOT NULL),
    limits       TEXT   NOT NULL CHECK (limits::jsonb IS NOT NULL),
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id),
    FOREIGN KEY (account_id, team_id) REFERENCES teams (account_id, id)
);
CREATE INDEX virtual_keys_account_created ON virtual_keys (account_id, created_at, id);
-- What a user's or team's delete checks (and what the foreign keys check on it).
CREATE INDEX virtual_keys_user ON virtual_keys (account_id, user_id);
CREATE INDEX virtual_keys_team ON virtual_keys (account_id, team_id);
