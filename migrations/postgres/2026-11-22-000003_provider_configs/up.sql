-- Stored provider keys per gateway (spec §1.8); secrets sealed under the master key, never stored in clear.
CREATE TABLE provider_configs (
    id                TEXT             PRIMARY KEY,
    account_id        TEXT             NOT NULL,
    gateway_id        TEXT             NOT NULL,
    provider_slug     TEXT             NOT NULL,
    alias             TEXT             NOT NULL,
    default_config    BOOLEAN          NOT NULL,
    sealed_secret     TEXT             NOT NULL,
    secret_id         TEXT             NOT NULL,
    secret_preview    TEXT             NOT NULL,
    rate_limit        DOUBLE PRECISION,
    rate_limit_period DOUBLE PRECISION,
    created_at        BIGINT           NOT NULL,
    modified_at       BIGINT           NOT NULL,
    UNIQUE (account_id, gateway_id, provider_slug, alias),
    FOREIGN KEY (account_id, gateway_id) REFERENCES gateways (account_id, id) ON DELETE CASCADE
);
CREATE INDEX provider_configs_gateway ON provider_configs (account_id, gateway_id, created_at, id);

-- Account-level custom providers (spec §1.9), routable as custom-{slug}.
CREATE TABLE custom_providers (
    id           TEXT             PRIMARY KEY,
    account_id   TEXT             NOT NULL,
    slug         TEXT             NOT NULL,
    name         TEXT             NOT NULL,
    base_url     TEXT             NOT NULL,
    enable       BOOLEAN          NOT NULL,
    beta         BOOLEAN          NOT NULL,
    description  TEXT,
    link         TEXT,
    curl_example TEXT,
    js_example   TEXT,
    headers      TEXT,
    position     DOUBLE PRECISION,
    logo         TEXT             NOT NULL,
    created_at   BIGINT           NOT NULL,
    modified_at  BIGINT           NOT NULL,
    UNIQUE (account_id, slug)
);
CREATE INDEX custom_providers_account_name ON custom_providers (account_id, name, id);
