-- Traffic analytics (Gatehouse's `GET …/analytics`), pre-aggregated so that a report never reads `logs`. The log
-- insert adds each row it stores to these sums in the same transaction (`store::analytics`); deleting logs does not
-- subtract, so they count traffic, not the logs kept.
--
-- A row per account, gateway, span (60000: a minute, 3600000: an hour), dimension, bucket (the span's UTC start,
-- epoch ms), provider, model ('' for none) and value. Dimensions: 'all' (value ''), 'key', 'user', 'team' (value ''
-- for none) and 'metadata.<key>' (hour rows only). The figures: requests, errors (success = false), cache hits,
-- tokens in and out (missing counts as 0), the cost (sum, and `priced`: how many logs had one), the duration (sum
-- and maximum, ms) and a latency histogram, h00..h29, whose buckets end (exclusive) at 1, 2, 4, 6, 10, 15, 25,
-- 40, 60, 100, 150, 250, 400, 600, 1000, 1500, 2500, 4000, 6000, 10000, 15000, 25000, 40000, 60000, 100000,
-- 150000, 250000, 400000 and 600000 ms (h29: 600000 and more). The key's order serves every report: one range per
-- gateway of a span, a dimension and a time range.
-- WITHOUT ROWID: the key is the table, so an upsert maintains one B-tree, not a table and its key index.
CREATE TABLE analytics_rollups (
    account_id   TEXT             NOT NULL,
    gateway_id   TEXT             NOT NULL,
    span_ms      BIGINT           NOT NULL,
    dimension    TEXT             NOT NULL,
    bucket       BIGINT           NOT NULL,
    provider     TEXT             NOT NULL,
    model        TEXT             NOT NULL,
    value        TEXT             NOT NULL,
    requests     BIGINT           NOT NULL,
    errors       BIGINT           NOT NULL,
    cached       BIGINT           NOT NULL,
    tokens_in    BIGINT           NOT NULL,
    tokens_out   BIGINT           NOT NULL,
    cost         REAL             NOT NULL,
    priced       BIGINT           NOT NULL,
    duration_sum BIGINT           NOT NULL,
    duration_max BIGINT           NOT NULL,
    h00 BIGINT NOT NULL, h01 BIGINT NOT NULL, h02 BIGINT NOT NULL, h03 BIGINT NOT NULL, h04 BIGINT NOT NULL, h05 BIGINT NOT NULL,
    h06 BIGINT NOT NULL, h07 BIGINT NOT NULL, h08 BIGINT NOT NULL, h09 BIGINT NOT NULL, h10 BIGINT NOT NULL, h11 BIGINT NOT NULL,
    h12 BIGINT NOT NULL, h13 BIGINT NOT NULL, h14 BIGINT NOT NULL, h15 BIGINT NOT NULL, h16 BIGINT NOT NULL, h17 BIGINT NOT NULL,
    h18 BIGINT NOT NULL, h19 BIGINT NOT NULL, h20 BIGINT NOT NULL, h21 BIGINT NOT NULL, h22 BIGINT NOT NULL, h23 BIGINT NOT NULL,
    h24 BIGINT NOT NULL, h25 BIGINT NOT NULL, h26 BIGINT NOT NULL, h27 BIGINT NOT NULL, h28 BIGINT NOT NULL, h29 BIGINT NOT NULL,
    PRIMARY KEY (account_id, gateway_id, span_ms, dimension, bucket, provider, model, value)
) WITHOUT ROWID;

-- The logs already stored, by dimension 'all', 'key', 'user' and 'team', in both spans: one pass over the logs per
-- dimension. Metadata is not backfilled (its rows begin with the logs stored from here on): reading it would parse
-- every log's JSON, and one malformed text must not fail the migration.
INSERT INTO analytics_rollups (account_id, gateway_id, span_ms, dimension, bucket, provider, model, value, requests, errors,
    cached, tokens_in, tokens_out, cost, priced, duration_sum, duration_max,
    h00, h01, h02, h03, h04, h05, h06, h07, h08, h09,
    h10, h11, h12, h13, h14, h15, h16, h17, h18, h19,
    h20, h21, h22, h23, h24, h25, h26, h27, h28, h29)
SELECT account_id, gateway_id, span_ms, dimension, created_at - (created_at % span_ms), provider, model, value,
    COUNT(*), SUM(CASE WHEN success THEN 0 ELSE 1 END), SUM(CASE WHEN cached THEN 1 ELSE 0 END),
    SUM(COALESCE(tokens_in, 0)), SUM(COALESCE(tokens_out, 0)), COALESCE(SUM(cost), 0), COUNT(cost), SUM(duration),
    MAX(duration),
    SUM(CASE WHEN duration < 1 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 1 AND duration < 2 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 2 AND duration < 4 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 4 AND duration < 6 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 6 AND duration < 10 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 10 AND duration < 15 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 15 AND duration < 25 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 25 AND duration < 40 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 40 AND duration < 60 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 60 AND duration < 100 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 100 AND duration < 150 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 150 AND duration < 250 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 250 AND duration < 400 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 400 AND duration < 600 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 600 AND duration < 1000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 1000 AND duration < 1500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 1500 AND duration < 2500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 2500 AND duration < 4000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 4000 AND duration < 6000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 6000 AND duration < 10000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 10000 AND duration < 15000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 15000 AND duration < 25000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 25000 AND duration < 40000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 40000 AND duration < 60000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 60000 AND duration < 100000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 100000 AND duration < 150000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 150000 AND duration < 250000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 250000 AND duration < 400000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 400000 AND duration < 600000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN duration >= 600000 THEN 1 ELSE 0 END)
FROM (
    SELECT account_id, gateway_id, created_at, provider, COALESCE(model, '') AS model, success, cached, tokens_in, tokens_out, cost,
        duration, 'all' AS dimension, '' AS value FROM logs
    UNION ALL
    SELECT account_id, gateway_id, created_at, provider, COALESCE(model, '') AS model, success, cached, tokens_in, tokens_out, cost,
        duration, 'key', COALESCE(key_id, '') FROM logs
    UNION ALL
    SELECT account_id, gateway_id, created_at, provider, COALESCE(model, '') AS model, success, cached, tokens_in, tokens_out, cost,
        duration, 'user', COALESCE(user_id, '') FROM logs
    UNION ALL
    SELECT account_id, gateway_id, created_at, provider, COALESCE(model, '') AS model, success, cached, tokens_in, tokens_out, cost,
        duration, 'team', COALESCE(team_id, '') FROM logs
) AS rows_by_dimension
CROSS JOIN (SELECT 60000 AS span_ms UNION ALL SELECT 3600000) AS spans
GROUP BY account_id, gateway_id, span_ms, dimension, created_at - (created_at % span_ms), provider, model, value;
