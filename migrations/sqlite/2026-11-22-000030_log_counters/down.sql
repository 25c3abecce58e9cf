DROP TABLE log_counters;
