-- Flask-Migrate is gone: its bookkeeping table goes too. IF EXISTS, because a
-- database created after the move never had one.
DROP TABLE IF EXISTS alembic_version;
