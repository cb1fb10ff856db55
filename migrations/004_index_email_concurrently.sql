-- safe, statement by statement: CREATE INDEX CONCURRENTLY cannot run inside a
-- transaction block, so this file runs one statement at a time.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);
