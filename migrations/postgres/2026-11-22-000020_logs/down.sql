DROP TABLE log_bodies;
DROP TABLE logs;
