-- Dynamic routes (spec §1.7): per gateway, a named route with append-only versions (the element graph as the client
-- sent it) and deployments (which version serves traffic; rollback deploys an older one). Route names are unique in a
-- gateway (clients invoke `dynamic/<name>`). `version_id` and `deployment_id` on the route are the live pointers,
-- written in the same transaction as the deployment row; `number` orders versions and deployments within a route
-- (created_at alone ties within a millisecond). Deleting a gateway deletes its routes, and a route its versions and
-- deployments, through the cascading foreign keys.
CREATE TABLE routes (
    id            TEXT   PRIMARY KEY,
    account_id    TEXT   NOT NULL,
    gateway_id    TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    version_id    TEXT   NOT NULL,
    deployment_id TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    modified_at   BIGINT NOT NULL,
    UNIQUE (account_id, gateway_id, name),
    FOREIGN KEY (account_id, gateway_id) REFERENCES gateways (account_id, id) ON DELETE CASCADE
);
CREATE INDEX routes_gateway_created ON routes (account_id, gateway_id, created_at, id);

CREATE TABLE route_versions (
    id         TEXT   PRIMARY KEY,
    route_id   TEXT   NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
    number     BIGINT NOT NULL,
    elements   TEXT   NOT NULL CHECK (elements::jsonb IS NOT NULL),
    comment    TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (route_id, number)
);

CREATE TABLE route_deployments (
    id         TEXT   PRIMARY KEY,
    route_id   TEXT   NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
    version_id TEXT   NOT NULL REFERENCES route_versions (id) ON DELETE CASCADE,
    number     BIGINT NOT NULL,
    comment    TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (route_id, number)
);
CREATE INDEX route_deployments_version ON route_deployments (version_id);
