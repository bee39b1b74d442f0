//! The writer's commit on PostgreSQL: one transaction per batch (group commit, as on redb).
//!
//! The transaction first locks the `head` row, so appends from every replica are serialised:
//! one chain, one sequence. Conditions (an approval's state as its caller read it, one
//! forwarded mark per call) are checked under that lock by the same [`admit`] as redb's, so a
//! race between replicas has exactly one winner. Approval changes are announced with
//! `pg_notify`, delivered only if the transaction commits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use super::super::writer::{Planned, Results, accepted, admit, plan, results};
use super::super::{Head, ItemKind, Request};
use super::listen::CHANNEL;
use super::{Pg, describe};
use crate::ledger::store::Table;
use crate::signing::Signer;

pub(in crate::ledger) struct PgSink {
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
    pub(in crate::ledger) fn new(pg: Arc<Pg>) -> PgSink {
        PgSink {
            pg,
            client: None,
            prepared: HashMap::new(),
        }
    }

    /// Commit a batch; a lost connection is made again on the next batch.
    pub(in crate::ledger) fn commit(
        &mut self,
        signer: Option<&Signer>,
        batch: &[Request],
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

/// Last value per key, in the order the batch set them (`None`: remove).
type Finals = BTreeMap<String, Option<Vec<u8>>>;

fn write(
    client: &mut Client,
    cache: &mut HashMap<String, Statement>,
    me: &str,
    signer: Option<&Signer>,
    batch: &[Request],
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
    // the desk's items a change is conditional on, locked while the batch is admitted
    let items = |table: Table| -> Vec<&str> {
        batch
            .iter()
            .flat_map(|r| r.change.conditions())
            .filter(|(t, _, _)| *t == table)
            .map(|(_, id, _)| id)
            .collect()
    };
    let ids = items(Table::Approvals);
    let calls: Vec<&str> = batch
        .iter()
        .flat_map(|r| &r.change.forwarded)
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
    let refusals = admit(batch, &mut |t, key| {
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
        .flat_map(|r| &r.change.rows)
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
    write_state(&mut tx, me, &accepted).map_err(db)?;
    let h = planned.head;
    let head_text = h.to_string();
    match signer {
        // the head and its signature in one statement
        Some(signer) => {
            let sig = signer.sign_head(h.seq, &h.hash);
            tx.execute(
                "INSERT INTO airlock_meta (key, value) VALUES ('head', $1), ('head_sig', $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&head_text.as_bytes(), &sig.as_bytes()],
            )
        }
        None => tx.execute(
            "UPDATE airlock_meta SET value = $1 WHERE key = 'head'",
            &[&head_text.as_bytes()],
        ),
    }
    .map_err(db)?;
    if accepted.iter().any(|r| r.change.approvals_indexed) {
        tx.execute(
            "INSERT INTO airlock_meta (key, value) VALUES ('approvals_indexed', '1') \
             ON CONFLICT (key) DO NOTHING",
            &[],
        )
        .map_err(db)?;
    }
    let notices: Vec<String> = accepted
        .iter()
        .flat_map(|r| r.change.items_of(ItemKind::Approval))
        .map(|a| format!("{} {me}", a.id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
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
    if !planned.newly_signed.is_empty() {
        tx.execute(
            "INSERT INTO airlock_signed_calls (call_id) SELECT DISTINCT unnest($1::text[]) \
             ON CONFLICT DO NOTHING",
            &[&planned.newly_signed],
        )?;
    }
    Ok(())
}

/// Upsert the final values, delete the removed keys.
fn put(
    tx: &mut Prepared<'_, '_>,
    table: &str,
    key: &str,
    value: &str,
    owner: Option<&str>,
    finals: Finals,
) -> Result<(), postgres::Error> {
    let (set, gone): (Vec<_>, Vec<_>) = finals.into_iter().partition(|(_, v)| v.is_some());
    if !gone.is_empty() {
        let keys: Vec<String> = gone.into_iter().map(|(k, _)| k).collect();
        tx.execute(
            &format!("DELETE FROM {table} WHERE {key} = ANY($1)"),
            &[&keys],
        )?;
    }
    if !set.is_empty() {
        let (keys, values): (Vec<String>, Vec<Vec<u8>>) = set
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .unzip();
        match owner {
            Some(owner) => tx.execute(
                &format!(
                    "INSERT INTO {table} ({key}, {value}, owner) \
                     SELECT k, v, $3 FROM unnest($1::text[], $2::bytea[]) AS t(k, v) \
                     ON CONFLICT ({key}) DO UPDATE SET {value} = EXCLUDED.{value}, owner = EXCLUDED.owner"
                ),
                &[&keys, &values, &owner],
            )?,
            None => tx.execute(
                &format!(
                    "INSERT INTO {table} ({key}, {value}) \
                     SELECT * FROM unnest($1::text[], $2::bytea[]) \
                     ON CONFLICT ({key}) DO UPDATE SET {value} = EXCLUDED.{value}"
                ),
                &[&keys, &values],
            )?,
        };
    }
    Ok(())
}

fn json(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn write_state(
    tx: &mut Prepared<'_, '_>,
    me: &str,
    accepted: &[&Request],
) -> Result<(), postgres::Error> {
    let (mut states, mut open, mut forwarded, mut held, mut drift) = (
        Finals::new(),
        Finals::new(),
        Finals::new(),
        Finals::new(),
        Finals::new(),
    );
    let mut call_keys = Finals::new();
    let mut tools: BTreeMap<String, String> = BTreeMap::new();
    for c in accepted.iter().map(|r| &r.change) {
        for a in c.items_of(ItemKind::Approval) {
            states.insert(a.id.clone(), Some(a.state.clone()));
            open.insert(a.id.clone(), a.open.clone());
        }
        for h in c.items_of(ItemKind::Held) {
            held.insert(h.id.clone(), Some(h.state.clone()));
        }
        for k in c.items_of(ItemKind::CallKey) {
            call_keys.insert(k.id.clone(), Some(k.state.clone()));
        }
        for k in &c.forget_keys {
            call_keys.insert(k.clone(), None);
        }
        for (id, route) in &c.forwarded {
            forwarded.insert(id.clone(), Some(json(route)));
        }
        for id in &c.settled {
            forwarded.insert(id.clone(), None);
        }
        for (k, h) in &c.tools {
            tools.insert(k.clone(), h.clone());
        }
        for (k, v) in &c.drift {
            drift.insert(k.clone(), v.as_ref().map(json));
        }
    }
    put(tx, "airlock_approvals", "id", "state", None, states)?;
    put(tx, "airlock_open_approvals", "id", "entry", Some(me), open)?;
    put(
        tx,
        "airlock_forwarded",
        "call_id",
        "route",
        Some(me),
        forwarded,
    )?;
    put(tx, "airlock_held", "id", "state", Some(me), held)?;
    put(tx, "airlock_call_keys", "key", "entry", None, call_keys)?;
    put(tx, "airlock_drift", "key", "value", None, drift)?;
    if !tools.is_empty() {
        let (keys, hashes): (Vec<String>, Vec<String>) = tools.into_iter().unzip();
        tx.execute(
            "INSERT INTO airlock_tools (key, hash) SELECT * FROM unnest($1::text[], $2::text[]) \
             ON CONFLICT (key) DO UPDATE SET hash = EXCLUDED.hash",
            &[&keys, &hashes],
        )?;
    }
    Ok(())
}
