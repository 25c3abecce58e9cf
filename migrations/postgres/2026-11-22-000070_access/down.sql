DROP TABLE virtual_keys;
DROP TABLE users;
DROP TABLE teams;
