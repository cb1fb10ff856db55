-- safe: a nullable column without a default is a catalog-only change; the
-- running application keeps working. Runs on the active side with lock_timeout.
ALTER TABLE users ADD COLUMN nickname text;
