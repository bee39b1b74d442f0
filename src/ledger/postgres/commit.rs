//! The writer's commit on PostgreSQL: one transaction per batch (group commit, as on redb).
//!
//! The transaction first locks the `head` row, so appends from every replica are serialised:
//! one chain, one sequence. Conditions (an approval's state as its caller read it, one
//! forwarded mark per call) are checked under that lock by the same `batch::check_conditions`
//! as redb's, so a race between replicas has exactly one winner; what is written is
//! `batch::writes`'s.
//! Approval changes are announced with `pg_notify`, delivered only if the transaction commits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use super::super::backend::Committer;
use super::super::batch::{
    Finals, Planned, Results, Writes, accepted, check_conditions, plan, results, writes,
};
use super::super::change::Change;
use super::super::head::Head;
use super::super::schema::Table;
use super::listen::CHANNEL;
use super::{Pg, describe};
use crate::signing::Signer;

pub(super) struct PgSink {
    pg: Arc<Pg>,
    client: Option<Client>,
    /// The connection's prepared statements, by SQL text: a statement is parsed once per
    /// connection, then each use is one round trip instead of two.
    prepared: HashMap<String, Statement>,
}

/// A transaction that prepares each statement once per connection.
struct Prepared<'a, 'c> {
    tx: postgres::Transaction<'c>,
    cache: &'a mut HashMap<String, Statement>,
}

impl Prepared<'_, '_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.cache.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql)?;
        self.cache.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.tx.query(&s, params)
    }

    fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let s = self.statement(sql)?;
        self.tx.query_one(&s, params)
    }

    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let s = self.statement(sql)?;
        self.tx.execute(&s, params)
    }
}

impl PgSink {
    pub(super) fn new(pg: Arc<Pg>) -> PgSink {
        PgSink {
            pg,
            client: None,
            prepared: HashMap::new(),
        }
    }
}

impl Committer for PgSink {
    /// Commit a batch after the head as locked in the database (other replicas append too);
    /// a lost connection is made again on the next batch.
    fn commit(
        &mut self,
        _head: Head,
        signer: Option<&Signer>,
        batch: &[&Change],
    ) -> Result<(Head, Results), String> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.prepared.clear();
            self.client = Some(self.pg.connect().map_err(|e| describe(&e))?);
        }
        let Some(client) = self.client.as_mut() else {
            return Err("no database connection".into());
        };
        let result = write(client, &mut self.prepared, self.pg.replica(), signer, batch);
        // whatever failed, a fresh connection for the next batch is the safe start
        if result.is_err() {
            self.client = None;
        }
        result
    }
}

/// One batch in one transaction: the head locked, the batch's conditions checked against the
/// stored values (locked too), the accepted changes' rows and states written, the approvals
/// changed announced, committed.
fn write(
    client: &mut Client,
    cache: &mut HashMap<String, Statement>,
    me: &str,
    signer: Option<&Signer>,
    batch: &[&Change],
) -> Result<(Head, Results), String> {
    let db = |e: postgres::Error| describe(&e);
    let mut tx = Prepared {
        tx: client.transaction().map_err(db)?,
        cache,
    };
    let head = lock_head(&mut tx)?;
    let stored = Stored::lock(&mut tx, batch).map_err(db)?;
    let refusals = check_conditions(batch, &mut |t, key| Ok(stored.get(t, key)))?;
    let accepted = accepted(batch, &refusals);
    let signed = signed_calls(&mut tx, &accepted).map_err(db)?;
    let planned = plan(head, &accepted, &mut |id| Ok(signed.contains(id)), signer)?;
    write_rows(&mut tx, &planned).map_err(db)?;
    let writes = writes(&accepted, &planned, signer)?;
    write_states(&mut tx, writes, me).map_err(db)?;
    tx.tx.commit().map_err(db)?;
    Ok((planned.head, results(refusals, planned.seqs)))
}

/// The chain's head, its row locked: every replica's appends wait here, one after another.
fn lock_head(tx: &mut Prepared<'_, '_>) -> Result<Head, String> {
    let head_text: Vec<u8> = tx
        .query_one(
            "SELECT value FROM airlock_meta WHERE key = 'head' FOR UPDATE",
            &[],
        )
        .map_err(|e| describe(&e))?
        .get(0);
    parse_head(&head_text)
}

/// What the batch's conditions are checked against, as stored now: the approvals, held calls
/// and call keys a change is conditional on (locked until the transaction ends), and which of
/// the calls it marks forwarded already have a mark.
struct Stored {
    approvals: HashMap<String, Vec<u8>>,
    marked: HashSet<String>,
    held: HashMap<String, Vec<u8>>,
    keys: HashMap<String, Vec<u8>>,
}

impl Stored {
    fn lock(tx: &mut Prepared<'_, '_>, batch: &[&Change]) -> Result<Stored, postgres::Error> {
        let calls: Vec<&str> = batch
            .iter()
            .flat_map(|c| &c.forwarded)
            .map(|(id, _)| id.as_str())
            .collect();
        let approvals = values(
            tx,
            "SELECT id, state FROM airlock_approvals WHERE id = ANY($1) FOR UPDATE",
            &conditioned(batch, Table::Approvals),
        )?;
        let marked = present(
            tx,
            "SELECT call_id FROM airlock_forwarded WHERE call_id = ANY($1)",
            &calls,
        )?;
        let held = values(
            tx,
            "SELECT id, state FROM airlock_held WHERE id = ANY($1) FOR UPDATE",
            &conditioned(batch, Table::Held),
        )?;
        let keys = values(
            tx,
            "SELECT key, entry FROM airlock_call_keys WHERE key = ANY($1) FOR UPDATE",
            &conditioned(batch, Table::CallKeys),
        )?;
        Ok(Stored {
            approvals,
            marked,
            held,
            keys,
        })
    }

    /// The stored value `check_conditions` compares with; a forwarded mark reads as empty.
    fn get(&self, table: Table, key: &str) -> Option<Vec<u8>> {
        match table {
            Table::Approvals => self.approvals.get(key).cloned(),
            Table::Held => self.held.get(key).cloned(),
            Table::CallKeys => self.keys.get(key).cloned(),
            _ => self.marked.contains(key).then(Vec::new),
        }
    }
}

/// The desk's items in `table` a change of the batch is conditional on.
fn conditioned<'a>(batch: &[&'a Change], table: Table) -> Vec<&'a str> {
    batch
        .iter()
        .flat_map(|c| c.conditions())
        .filter(|(t, _, _)| *t == table)
        .map(|(_, id, _)| id)
        .collect()
}

/// The values a query selects (`key, value … WHERE key = ANY($1)`) by key; no query for no keys.
fn values(
    tx: &mut Prepared<'_, '_>,
    sql: &str,
    keys: &[&str],
) -> Result<HashMap<String, Vec<u8>>, postgres::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(tx
        .query(sql, &[&keys])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Which of `keys` a query (`key … WHERE key = ANY($1)`) finds; no query for no keys.
fn present(
    tx: &mut Prepared<'_, '_>,
    sql: &str,
    keys: &[&str],
) -> Result<HashSet<String>, postgres::Error> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(tx.query(sql, &[&keys])?.iter().map(|r| r.get(0)).collect())
}

/// The calls with rows in the accepted changes that are signed already (their later rows are too).
fn signed_calls(
    tx: &mut Prepared<'_, '_>,
    accepted: &[&Change],
) -> Result<HashSet<String>, postgres::Error> {
    let calls: Vec<&str> = accepted
        .iter()
        .flat_map(|c| &c.rows)
        .filter(|r| !r.call_id.is_empty())
        .map(|r| r.call_id.as_str())
        .collect();
    present(
        tx,
        "SELECT call_id FROM airlock_signed_calls WHERE call_id = ANY($1)",
        &calls,
    )
}

/// Write every state table's final values (owned by `me`), then announce the approvals changed
/// to the other replicas (`pg_notify`: delivered only if the transaction commits).
fn write_states(
    tx: &mut Prepared<'_, '_>,
    writes: Writes<'_>,
    me: &str,
) -> Result<(), postgres::Error> {
    let notices: Vec<String> = writes
        .get(&Table::Approvals)
        .into_iter()
        .flat_map(|finals| finals.keys())
        .map(|id| format!("{id} {me}"))
        .collect();
    for (table, finals) in writes {
        put(tx, table, Some(me), finals)?;
    }
    if !notices.is_empty() {
        tx.execute(
            "SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n",
            &[&CHANNEL, &notices],
        )?;
    }
    Ok(())
}

fn parse_head(text: &[u8]) -> Result<Head, String> {
    String::from_utf8_lossy(text).parse()
}

fn write_rows(tx: &mut Prepared<'_, '_>, planned: &Planned) -> Result<(), postgres::Error> {
    if !planned.rows.is_empty() {
        let seqs: Vec<i64> = planned
            .rows
            .iter()
            .map(|(s, _)| i64::try_from(*s).unwrap_or(i64::MAX))
            .collect();
        let data: Vec<&[u8]> = planned.rows.iter().map(|(_, b)| b.as_slice()).collect();
        tx.execute(super::INSERT_ROWS, &[&seqs, &data])?;
    }
    Ok(())
}

/// Upsert one state table's final values, delete its removed keys; `owner`: the replica that
/// changes them, for the tables that record one.
fn put(
    tx: &mut Prepared<'_, '_>,
    table: Table,
    owner: Option<&str>,
    finals: Finals<'_>,
) -> Result<(), postgres::Error> {
    let (name, key, value) = table.sql();
    let (set, gone): (Vec<_>, Vec<_>) = finals.into_iter().partition(|(_, v)| v.is_some());
    if !gone.is_empty() {
        let keys: Vec<String> = gone.into_iter().map(|(k, _)| k.into_owned()).collect();
        tx.execute(
            &format!("DELETE FROM {name} WHERE {key} = ANY($1)"),
            &[&keys],
        )?;
    }
    if set.is_empty() {
        return Ok(());
    }
    let (keys, values): (Vec<String>, Vec<Vec<u8>>) = set
        .into_iter()
        .map(|(k, v)| {
            (
                k.into_owned(),
                v.map(|v| v.into_owned()).unwrap_or_default(),
            )
        })
        .unzip();
    match (table, owner.filter(|_| table.owned())) {
        (Table::Signed, _) => tx.execute(
            "INSERT INTO airlock_signed_calls (call_id) SELECT DISTINCT unnest($1::text[]) \
             ON CONFLICT DO NOTHING",
            &[&keys],
        )?,
        (Table::Tools, _) => {
            let hashes: Vec<String> = values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            tx.execute(
                "INSERT INTO airlock_tools (key, hash) SELECT * FROM unnest($1::text[], $2::text[]) \
                 ON CONFLICT (key) DO UPDATE SET hash = EXCLUDED.hash",
                &[&keys, &hashes],
            )?
        }
        (_, Some(owner)) => tx.execute(
            &format!(
                "INSERT INTO {name} ({key}, {value}, owner) \
                 SELECT k, v, $3 FROM unnest($1::text[], $2::bytea[]) AS t(k, v) \
                 ON CONFLICT ({key}) DO UPDATE SET {value} = EXCLUDED.{value}, owner = EXCLUDED.owner"
            ),
            &[&keys, &values, &owner],
        )?,
        (_, None) => tx.execute(
            &format!(
                "INSERT INTO {name} ({key}, {value}) \
                 SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT ({key}) DO UPDATE SET {value} = EXCLUDED.{value}"
            ),
            &[&keys, &values],
        )?,
    };
    Ok(())
}
