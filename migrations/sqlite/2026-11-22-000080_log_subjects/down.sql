-- DROP COLUMN needs SQLite 3.35 or newer (the bundled library is newer).
ALTER TABLE logs DROP COLUMN team_id;
ALTER TABLE logs DROP COLUMN user_id;
ALTER TABLE logs DROP COLUMN key_id;
