-- The ledger on PostgreSQL: the same rows (byte for byte) and state as the redb file, shared by
-- every replica. Rows are `prev (32 bytes) || hash (32 bytes) || canonical entry JSON`, as in redb.
CREATE TABLE airlock_rows (
    seq  BIGINT PRIMARY KEY,
    data BYTEA NOT NULL
);
-- `head` (`count:hex`), `head_sig`, `pruned` (tombstone), `approvals_indexed`.
-- The `head` row is locked by every append: one chain, one sequence, across replicas.
CREATE TABLE airlock_meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
INSERT INTO airlock_meta (key, value)
VALUES ('head', convert_to('0:0000000000000000000000000000000000000000000000000000000000000000', 'UTF8')),
       ('approvals_indexed', convert_to('1', 'UTF8'));
-- Every approval's last state (opaque to the database: the desk encodes it).
CREATE TABLE airlock_approvals (
    id    TEXT PRIMARY KEY,
    state BYTEA NOT NULL
);
-- Open approvals' index entries, with the replica that last changed each (it sends that stage's
-- mail and runs the approved call; the others adopt it if that replica dies).
CREATE TABLE airlock_open_approvals (
    id    TEXT PRIMARY KEY,
    entry BYTEA NOT NULL,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE TABLE airlock_tools (
    key  TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
CREATE TABLE airlock_held (
    id    TEXT PRIMARY KEY,
    state BYTEA NOT NULL
);
CREATE TABLE airlock_drift (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE airlock_signed_calls (
    call_id TEXT PRIMARY KEY
);
-- Execution intents not yet settled by an outcome row: one per call (the primary key makes a
-- second execution of a call impossible), with the replica running it.
CREATE TABLE airlock_forwarded (
    call_id TEXT PRIMARY KEY,
    route   BYTEA NOT NULL,
    owner   TEXT NOT NULL DEFAULT ''
);
-- Live replicas and when each last said so. The '' row stands for state written without a
-- replica (copied from redb): the first replica to reap it adopts that state.
CREATE TABLE airlock_replicas (
    id   TEXT PRIMARY KEY,
    seen TIMESTAMPTZ NOT NULL
);
INSERT INTO airlock_replicas (id, seen) VALUES ('', 'epoch');
