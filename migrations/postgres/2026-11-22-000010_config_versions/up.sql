-- The version counter of config documents (design §2): one row, incremented in SQL inside the transaction that
-- reads the state a document is built from, so that a higher version always carries newer state, also across
-- several control planes on one database.
CREATE TABLE config_version_counter (
    id    TEXT   PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO config_version_counter (id, value) VALUES ('documents', 0);
