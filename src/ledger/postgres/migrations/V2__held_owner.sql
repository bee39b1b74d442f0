-- Held calls get the replica that last changed each, like open approvals and forwarded calls: a
-- release under way when its replica dies is adopted (recorded as outcome_unknown, never re-run).
ALTER TABLE airlock_held ADD COLUMN owner TEXT NOT NULL DEFAULT '';
