DROP TABLE IF EXISTS analytics_rollups;
