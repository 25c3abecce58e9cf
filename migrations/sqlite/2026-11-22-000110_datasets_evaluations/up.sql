-- Datasets and evaluations (spec §1.4, §1.6, §3.10, §3.11). A dataset is a saved filter over one gateway's logs,
-- stored as the `filters` array the client sent (validated, so the evaluation runner can type it again). An
-- evaluation keeps a copy of its datasets as they were when it was created (`datasets`, a JSON array): it runs once
-- over the logs those filters matched then, and a restart that re-runs it must use the same filters even if a
-- dataset changed or went away since. Its results are one row per evaluator, written with `processed` in one
-- transaction. Deleting a gateway deletes its datasets and evaluations, and an evaluation its results, through the
-- cascading foreign keys (as routes do, migration 000090).
CREATE TABLE datasets (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    gateway_id  TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    enable      BOOLEAN NOT NULL,
    filters     TEXT    NOT NULL CHECK (json_valid(filters)),
    created_at  BIGINT  NOT NULL,
    modified_at BIGINT  NOT NULL,
    FOREIGN KEY (account_id, gateway_id) REFERENCES gateways (account_id, id) ON DELETE CASCADE
);
CREATE INDEX datasets_gateway_created ON datasets (account_id, gateway_id, created_at, id);

CREATE TABLE evaluations (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    gateway_id  TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    datasets    TEXT    NOT NULL CHECK (json_valid(datasets)),
    processed   BOOLEAN NOT NULL,
    total_logs  BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    modified_at BIGINT  NOT NULL,
    FOREIGN KEY (account_id, gateway_id) REFERENCES gateways (account_id, id) ON DELETE CASCADE
);
CREATE INDEX evaluations_gateway_created ON evaluations (account_id, gateway_id, created_at, id);
-- The runner's start-up scan for evaluations a stopped process left unfinished.
CREATE INDEX evaluations_unprocessed ON evaluations (processed, created_at);

CREATE TABLE evaluation_results (
    id                 TEXT    PRIMARY KEY,
    evaluation_id      TEXT    NOT NULL REFERENCES evaluations (id) ON DELETE CASCADE,
    evaluation_type_id TEXT    NOT NULL,
    position           INTEGER NOT NULL,
    result             TEXT    NOT NULL,
    status             INTEGER NOT NULL,
    status_description TEXT    NOT NULL,
    total_logs         BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL,
    modified_at        BIGINT  NOT NULL,
    UNIQUE (evaluation_id, evaluation_type_id)
);
