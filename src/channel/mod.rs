//! Channels beside mail: each `[[channel]]` of airlock.toml that a policy role names hears of
//! that role's approvals — opened, decided, modified, escalated, timed out, closed — as a signed
//! webhook (Standard Webhooks). A channel carries news; the decision is always made on
//! Airlock's page.
//!
//! Delivery reads the ledger: an event is a row already committed with the change it announces
//! (so it can never announce what did not happen, nor be lost with a crash), and each channel
//! keeps a cursor in the ledger, moved in the same commit as the row recording a delivery. So
//! delivery is at least once, in ledger order, with a stable `webhook-id` per row and channel.
//!
//! This module owns the secrets (read from the environment when the gate starts; never logged,
//! never in `Config`) and the channels' health for `/readyz`. It must never decide anything nor
//! write a row but a delivery's.

pub mod chat;
pub mod dispatch;
pub mod event;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::channel::{ChannelConfig, ChannelKind, UrlSource};
use webhook::Secret;

/// A channel's secret read from the variable `var`, or why it cannot be (naming the variable).
pub fn secret_from_env(var: &str) -> Result<Secret, String> {
    match std::env::var(var) {
        Ok(v) => Secret::parse(&v).map_err(|why| {
            format!("the environment variable {var} does not hold a webhook secret: {why}")
        }),
        Err(std::env::VarError::NotPresent) => Err(format!(
            "the environment variable {var} is not set (it holds the webhook's signing secret, `whsec_…`)"
        )),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("the environment variable {var} is not text"))
        }
    }
}

/// A channel ready to post: where, how, and (a webhook) the key it signs with.
#[derive(Debug, Clone)]
pub struct Channel {
    /// `KIND:NAME`, as roles name it.
    pub reference: String,
    /// The name alone (its cursor's key).
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    pub secret: Option<Secret>,
}

/// The URL held by the variable `var`, or why it cannot be used.
fn url_from_env(var: &str) -> Result<String, String> {
    let url = std::env::var(var).map_err(|_| {
        format!("the environment variable {var} is not set (it holds the channel's URL)")
    })?;
    crate::config::channel::check_url(url.trim())
        // the URL is a credential: the message names the variable, not the value
        .map_err(|_| format!("the environment variable {var} does not hold an http:// or https:// URL without credentials"))?;
    Ok(url.trim().to_string())
}

/// A configured channel with its URL and secret read from the environment; on failure, the
/// key at fault (`url_env`, `secret_env`) and why.
pub fn resolve(c: &ChannelConfig) -> Result<Channel, (&'static str, String)> {
    let url = match &c.url {
        UrlSource::Written(u) => u.clone(),
        UrlSource::Env(var) => url_from_env(var).map_err(|why| ("url_env", why))?,
    };
    let secret = match &c.secret_env {
        Some(var) => Some(secret_from_env(var).map_err(|why| ("secret_env", why))?),
        None => None,
    };
    Ok(Channel {
        reference: c.reference(),
        name: c.name.clone(),
        kind: c.kind,
        url,
        secret,
    })
}

/// Every configured channel, as the gate starts.
pub fn from_config(channels: &[ChannelConfig]) -> Result<Vec<Channel>, String> {
    (channels.iter())
        .map(|c| resolve(c).map_err(|(_, why)| format!("channel `{}`: {why}", c.reference())))
        .collect()
}

/// What each channel's last attempts did, for `/readyz`'s warnings.
#[derive(Debug, Default)]
pub struct Status(Mutex<BTreeMap<String, Failing>>);

/// A channel whose current event has not gone through.
#[derive(Debug, Clone)]
struct Failing {
    since: String,
    attempts: u32,
    error: String,
}

impl Status {
    pub fn new() -> Arc<Status> {
        Arc::new(Status::default())
    }

    fn failed(&self, channel: &str, at: &str, error: &str) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let f = m.entry(channel.to_string()).or_insert_with(|| Failing {
            since: at.to_string(),
            attempts: 0,
            error: String::new(),
        });
        f.attempts += 1;
        f.error = error.to_string();
    }

    fn recovered(&self, channel: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(channel);
    }

    /// One line per failing channel: since when, how many attempts, the last error.
    pub fn warnings(&self) -> Vec<String> {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter()
            .map(|(c, f)| {
                format!(
                    "channel `{c}` failing since {} ({} attempts; last: {}); events wait in order and are retried",
                    f.since, f.attempts, f.error
                )
            })
            .collect()
    }
}
