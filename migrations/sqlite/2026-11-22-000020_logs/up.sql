-- Request logs (spec §1.5). The searchable facts live in `logs`; heads and bodies in `log_bodies`, so listing and
-- filtering never read the large text columns. No foreign key to `gateways`: the writer must never lose a batch
-- because a gateway was deleted (or not yet created) while its records were in flight.
CREATE TABLE logs (
    id                    TEXT             PRIMARY KEY,
    account_id            TEXT             NOT NULL,
    gateway_id            TEXT             NOT NULL,
    created_at            BIGINT           NOT NULL,
    provider              TEXT             NOT NULL,
    model                 TEXT,
    model_type            TEXT,
    path                  TEXT             NOT NULL,
    request_type          TEXT,
    request_content_type  TEXT,
    response_content_type TEXT,
    status_code           INTEGER          NOT NULL,
    success               BOOLEAN          NOT NULL,
    cached                BOOLEAN          NOT NULL,
    duration              BIGINT           NOT NULL,
    tokens_in             BIGINT,
    tokens_out            BIGINT,
    -- tokens_in + tokens_out (missing counts as 0), stored so the `tokens` filter and aggregates need no expression.
    total_tokens          BIGINT           NOT NULL,
    cached_tokens_in      BIGINT,
    cost                  REAL,
    custom_cost           BOOLEAN          NOT NULL,
    metadata              TEXT,
    event_id              TEXT             NOT NULL,
    step                  INTEGER          NOT NULL,
    user_agent            TEXT,
    authenticated         BOOLEAN          NOT NULL,
    request_size          BIGINT           NOT NULL,
    response_size         BIGINT           NOT NULL,
    bodies_stored         BOOLEAN          NOT NULL,
    feedback              REAL,
    score                 REAL,
    config_hash           TEXT
);
-- The default listing (newest first) and every created_at range filter.
CREATE INDEX logs_gateway_created ON logs (account_id, gateway_id, created_at DESC, id DESC);
-- Equality filters and order_by on the common columns, each followed by the default order for the tie-break.
CREATE INDEX logs_gateway_provider ON logs (account_id, gateway_id, provider, created_at DESC, id DESC);
CREATE INDEX logs_gateway_model ON logs (account_id, gateway_id, model, created_at DESC, id DESC);
CREATE INDEX logs_gateway_model_type ON logs (account_id, gateway_id, model_type, created_at DESC, id DESC);
CREATE INDEX logs_gateway_success ON logs (account_id, gateway_id, success, created_at DESC, id DESC);
CREATE INDEX logs_gateway_cached ON logs (account_id, gateway_id, cached, created_at DESC, id DESC);
CREATE INDEX logs_gateway_event ON logs (account_id, gateway_id, event_id, created_at DESC, id DESC);

-- Heads and bodies, one row per log, read only by the detail and raw-body routes.
CREATE TABLE log_bodies (
    id                     TEXT    PRIMARY KEY REFERENCES logs (id) ON DELETE CASCADE,
    request_head           TEXT    NOT NULL,
    request_head_complete  BOOLEAN NOT NULL,
    response_head          TEXT    NOT NULL,
    response_head_complete BOOLEAN NOT NULL,
    request_body           TEXT,
    response_body          TEXT
);
