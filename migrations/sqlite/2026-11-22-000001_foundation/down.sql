DROP TABLE api_tokens;
DROP TABLE signing_keys;
DROP TABLE gateways;
