DROP TABLE custom_providers;
DROP TABLE provider_configs;
