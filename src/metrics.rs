//! Metrics: the counters and histograms `/metrics` serves in Prometheus text format.
//!
//! Owns the one registry of this process and its metric families; the gate, the forwarder, the
//! desk and the ledger writer only record into them ([`global`]). It must never decide anything,
//! block a caller, or carry a value that identifies a person or an argument: labels are policy
//! paths, verdicts, tool-server names, statuses and roles.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// The class's policy path (`allow`, `conditional`, `approve`, `deny`), or `none`.
    path: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolCallLabels {
    server: String,
    /// `ok`, `tool_error`, `failed` or `cancelled`.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    /// `connection`, `connection_per_address` (a newcomer refused), `connection_idle`,
    /// `connection_per_address_idle` (a connection with nothing being worked on closed for a
    /// newcomer), `header_timeout`, `body_timeout` (a connection closed by the watchdog),
    /// `session_per_actor` or `session`.
    what: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 100 µs … ~100 s
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    decision_seconds: Histogram,
    commit_seconds: Histogram,
    commit_changes: Histogram,
    tool_calls: Family<ToolCallLabels, Counter>,
    tool_seconds: Histograms<ServerLabels>,
    pending: Family<RoleLabels, Gauge>,
    refused: Family<RefusedLabels, Counter>,
    connections: Gauge,
}

/// The metrics of this process.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("airlock");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Tool calls decided, by the class's policy path and the verdict",
            calls.clone(),
        );
        let decision_seconds = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        registry.register(
            "decision_seconds",
            "Time from an approval request to a person's approve or deny",
            decision_seconds.clone(),
        );
        let commit_seconds = seconds();
        registry.register(
            "ledger_commit_seconds",
            "Duration of one durable ledger commit (write and sync)",
            commit_seconds.clone(),
        );
        let commit_changes = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "ledger_commit_changes",
            "Changes (callers) one durable ledger commit carried: the group-commit batch size",
            commit_changes.clone(),
        );
        let tool_calls = Family::<ToolCallLabels, Counter>::default();
        registry.register(
            "tool_server_calls",
            "Calls forwarded to tool servers, by server and status",
            tool_calls.clone(),
        );
        let tool_seconds: Histograms<ServerLabels> = Family::new_with_constructor(seconds);
        registry.register(
            "tool_server_call_seconds",
            "Duration of a forwarded call at its tool server",
            tool_seconds.clone(),
        );
        let pending = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "approvals_pending",
            "Approvals waiting for a decision, by the role asked",
            pending.clone(),
        );
        let refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "refused",
            "Connections and MCP sessions refused at a [limits] cap, by which cap",
            refused.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open connections on the HTTP listener",
            connections.clone(),
        );
        Metrics {
            registry,
            refused,
            connections,
            calls,
            decision_seconds,
            commit_seconds,
            commit_changes,
            tool_calls,
            tool_seconds,
            pending,
        }
    }

    /// A call was decided.
    pub fn call(&self, path: &str, verdict: &str) {
        self.calls
            .get_or_create(&CallLabels {
                path: path.to_string(),
                verdict: verdict.to_string(),
            })
            .inc();
    }

    /// A person approved or denied, `seconds` after the request.
    pub fn decided(&self, seconds: f64) {
        self.decision_seconds.observe(seconds);
    }

    /// A durable ledger commit took `seconds` and carried `changes`.
    pub fn commit(&self, seconds: f64, changes: usize) {
        self.commit_seconds.observe(seconds);
        self.commit_changes.observe(changes as f64);
    }

    /// A forwarded call ended at `server` with `status` after `seconds`.
    pub fn tool_call(&self, server: &str, status: &str, seconds: f64) {
        self.tool_calls
            .get_or_create(&ToolCallLabels {
                server: server.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.tool_seconds
            .get_or_create(&ServerLabels {
                server: server.to_string(),
            })
            .observe(seconds);
    }

    /// A connection or session was refused at the cap named `what`.
    pub fn refused(&self, what: &str) {
        self.refused
            .get_or_create(&RefusedLabels {
                what: what.to_string(),
            })
            .inc();
    }

    /// A connection was opened (`1`) or closed (`-1`).
    pub fn connection(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// The exposition text, with the approval queue's depth by role as it is now.
    pub fn render(&self, pending_by_role: &BTreeMap<String, usize>) -> String {
        self.pending.clear();
        for (role, n) in pending_by_role {
            self.pending
                .get_or_create(&RoleLabels { role: role.clone() })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::Metrics;

    #[test]
    fn what_is_recorded_is_rendered_with_its_labels() {
        let m = Metrics::new();
        m.call("allow", "allow");
        m.call("allow", "allow");
        m.call("approve", "approve");
        m.tool_call("shop", "ok", 0.002);
        m.commit(0.0004, 3);
        m.decided(42.0);
        m.refused("session_per_actor");
        m.connection(1);
        let text = m.render(&BTreeMap::from([("finance".to_string(), 2)]));
        assert!(
            text.contains(r#"airlock_calls_total{path="allow",verdict="allow"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"airlock_calls_total{path="approve",verdict="approve"} 1"#));
        assert!(text.contains(r#"airlock_tool_server_calls_total{server="shop",status="ok"} 1"#));
        assert!(text.contains(r#"airlock_approvals_pending{role="finance"} 2"#));
        assert!(text.contains(r#"airlock_refused_total{what="session_per_actor"} 1"#));
        assert!(text.contains("airlock_connections 1"), "{text}");
        assert!(
            text.contains("airlock_ledger_commit_changes_sum 3.0"),
            "{text}"
        );
        assert!(text.contains("airlock_decision_seconds_count 1"));
        // the queue depth is what it is at scrape time, not what it once was
        let text = m.render(&BTreeMap::new());
        assert!(!text.contains(r#"role="finance""#), "{text}");
    }
}
