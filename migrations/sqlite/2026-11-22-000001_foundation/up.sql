-- Portable subset only (see ARCHITECTURE.md): TEXT ids and JSON, BIGINT epoch milliseconds, BOOLEAN.
CREATE TABLE gateways (
    account_id  TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    internal_id TEXT    NOT NULL UNIQUE,
    is_default  BOOLEAN NOT NULL DEFAULT FALSE,
    settings    TEXT    NOT NULL CHECK (json_valid(settings)),
    created_at  BIGINT  NOT NULL,
    modified_at BIGINT  NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX gateways_account_created ON gateways (account_id, created_at, id);

CREATE TABLE signing_keys (
    kid                TEXT   PRIMARY KEY NOT NULL,
    public_key         TEXT   NOT NULL,
    sealed_private_key TEXT   NOT NULL,
    created_at         BIGINT NOT NULL,
    retired_at         BIGINT
);

CREATE TABLE api_tokens (
    id          TEXT   PRIMARY KEY NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    accounts    TEXT   NOT NULL CHECK (json_valid(accounts)),
    scopes      TEXT   NOT NULL CHECK (json_valid(scopes)),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
