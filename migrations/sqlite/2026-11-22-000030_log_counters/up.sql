-- How many logs each gateway stores, kept in step with inserts and deletes in the same transactions, so the
-- per-gateway cap (`log_management`) is checked without counting millions of rows.
CREATE TABLE log_counters (
    account_id TEXT   NOT NULL,
    gateway_id TEXT   NOT NULL,
    stored     BIGINT NOT NULL,
    PRIMARY KEY (account_id, gateway_id)
);
INSERT INTO log_counters (account_id, gateway_id, stored)
    SELECT account_id, gateway_id, COUNT(*) FROM logs GROUP BY account_id, gateway_id;
