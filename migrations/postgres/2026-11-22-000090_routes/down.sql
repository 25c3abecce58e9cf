DROP TABLE route_deployments;
DROP TABLE route_versions;
DROP TABLE routes;
