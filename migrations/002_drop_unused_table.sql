-- risky: destructive for an application that still reads the table. Runs on
-- the idle side, which is kept in sync, then all traffic flips to it; the old
-- side is fenced and reverse-synced during the watch window.
DROP TABLE legacy_sessions;
