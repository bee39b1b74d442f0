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
    Finals, Planned, Results, accepted, check_conditions, plan, results, writes,
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
    let head_text: Vec<u8> = tx
        .query_one(
            "SELECT value FROM airlock_meta WHERE key = 'head' FOR UPDATE",
            &[],
        )
        .map_err(db)?
        .get(0);
    let head = parse_head(&head_text)?;
    // the desk's items a change is conditional on, locked while the batch's conditions are checked
    let items = |table: Table| -> Vec<&str> {
        batch
            .iter()
            .flat_map(|c| c.conditions())
            .filter(|(t, _, _)| *t == table)
            .map(|(_, id, _)| id)
            .collect()
    };
    let ids = items(Table::Approvals);
    let calls: Vec<&str> = batch
        .iter()
        .flat_map(|c| &c.forwarded)
        .map(|(id, _)| id.as_str())
        .collect();
    let states: HashMap<String, Vec<u8>> = if ids.is_empty() {
        HashMap::new()
    } else {
        tx.query(
            "SELECT id, state FROM airlock_approvals WHERE id = ANY($1) FOR UPDATE",
            &[&ids],
        )
        .map_err(db)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let marked: HashSet<String> = if calls.is_empty() {
        HashSet::new()
    } else {
        tx.query(
            "SELECT call_id FROM airlock_forwarded WHERE call_id = ANY($1)",
            &[&calls],
        )
        .map_err(db)?
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let held_ids = items(Table::Held);
    let held: HashMap<String, Vec<u8>> = if held_ids.is_empty() {
        HashMap::new()
    } else {
        tx.query(
            "SELECT id, state FROM airlock_held WHERE id = ANY($1) FOR UPDATE",
            &[&held_ids],
        )
        .map_err(db)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let key_ids = items(Table::CallKeys);
    let keys: HashMap<String, Vec<u8>> = if key_ids.is_empty() {
        HashMap::new()
    } else {
        tx.query(
            "SELECT key, entry FROM airlock_call_keys WHERE key = ANY($1) FOR UPDATE",
            &[&key_ids],
        )
        .map_err(db)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let refusals = check_conditions(batch, &mut |t, key| {
        Ok(match t {
            Table::Approvals => states.get(key).cloned(),
            Table::Held => held.get(key).cloned(),
            Table::CallKeys => keys.get(key).cloned(),
            _ => marked.contains(key).then(Vec::new),
        })
    })?;
    let accepted = accepted(batch, &refusals);
    let row_calls: Vec<&str> = accepted
        .iter()
        .flat_map(|c| &c.rows)
        .filter(|r| !r.call_id.is_empty())
        .map(|r| r.call_id.as_str())
        .collect();
    let signed: HashSet<String> = if row_calls.is_empty() {
        HashSet::new()
    } else {
        tx.query(
            "SELECT call_id FROM airlock_signed_calls WHERE call_id = ANY($1)",
            &[&row_calls],
        )
        .map_err(db)?
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let planned = plan(head, &accepted, &mut |id| Ok(signed.contains(id)), signer)?;
    write_rows(&mut tx, &planned).map_err(db)?;
    let writes = writes(&accepted, &planned, signer)?;
    let notices: Vec<String> = writes
        .get(&Table::Approvals)
        .into_iter()
        .flat_map(|finals| finals.keys())
        .map(|id| format!("{id} {me}"))
        .collect();
    for (table, finals) in writes {
        put(&mut tx, table, Some(me), finals).map_err(db)?;
    }
    if !notices.is_empty() {
        tx.execute(
            "SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n",
            &[&CHANNEL, &notices],
        )
        .map_err(db)?;
    }
    tx.tx.commit().map_err(db)?;
    Ok((planned.head, results(refusals, planned.seqs)))
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
