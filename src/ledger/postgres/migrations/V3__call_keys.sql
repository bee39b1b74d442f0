-- What a retry of a call attaches to, keyed by the call's key (actor, tool and canonical
-- arguments, or actor and idempotency key): written with the approval, held call or autopilot
-- call it names, in the same transaction.
CREATE TABLE airlock_call_keys (
    key TEXT PRIMARY KEY,
    entry BYTEA NOT NULL
);
