DROP TABLE config_version_counter;
