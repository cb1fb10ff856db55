-- maintenance: a bulk rewrite of live data cannot be done on an idle copy (the
-- synced writes would overwrite it). Runs on the active side while the proxies
-- hold traffic.
UPDATE users SET email = lower(email) WHERE email <> lower(email);
