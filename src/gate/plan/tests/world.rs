//! The world a plan is made in: a setup with a class for every path, the tools served, the
//! call and the inputs a test varies, and the plan looked at.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::super::{Given, Plan, Snapshot, Step, Then, incoming, plan};
use crate::config::{Setup, load_setup};
use crate::drift::Usage;
use crate::drift::meter::State;
use crate::gate::GateCall;
use crate::gate::retries::Retried;
use crate::live::ChangedTools;
use crate::mcp::downstream::{ToolDef, ToolSet};
use crate::retry::{Asked, Entry, Fresh, Item, Retry};

pub(super) const NOW: DateTime<Utc> = crate::instant::utc(2026, 12, 3, 10, 0, 0);
pub(super) const ID: &str = "call-1";

pub(super) const MANIFESTS: &str = r#"
[[tool]]
server = "shop"
name = "echo"
class = "read_only"
target = "t"
impact = "i"
reversal = "none: reads"

[[tool]]
server = "shop"
name = "lookup"
class = "limited"
target = "t"
impact = "i"
reversal = "none: reads"

[[tool]]
server = "shop"
name = "refund"
class = "financial"
target = "t"
impact = "i"
reversal = "none: final"

[[tool]]
server = "shop"
name = "pay"
class = "financial"
target = "t"
impact = "i"
reversal = "none: final"
redact = ["/card"]

[[tool]]
server = "shop"
name = "wipe"
class = "forbidden"
target = "t"
impact = "i"
reversal = "none: final"

[[tool]]
server = "shop"
name = "purge"
class = "evidence"
target = "t"
impact = "i"
reversal = "none: final"

[[tool]]
server = "shop"
name = "odd"
class = "suspect"
target = "t"
impact = "i"
reversal = "none: reads"
redact = ["/card"]
"#;

/// Every path's class, with a review role (`[review]`) or without.
pub(super) fn policy(review: bool) -> String {
    let mut p = String::from(
        "version = \"v1\"\n[classes]\n\
         read_only = { path = \"allow\" }\n\
         limited = { path = \"allow\", limits = [{ window = \"1h\", max_calls = 1, notify = \"ops\" }] }\n\
         financial = { path = \"approve\", role = \"finance\", signed = false }\n\
         forbidden = { path = \"deny\" }\n\
         evidence = { path = \"deny\", signed = true }\n\
         suspect = { path = \"quarantine\" }\n\
         [roles]\nfinance = { emails = [\"f@example.com\"] }\nops = { emails = [\"o@example.com\"] }\n",
    );
    if review {
        p.push_str("[review]\nrole = \"ops\"\n");
    }
    p
}

/// A setup and the tools served: every manifest's tool, and `mystery`, which none describes.
pub(super) struct World {
    pub _dir: tempfile::TempDir,
    pub setup: Setup,
    pub changed: ChangedTools,
    pub served: ToolSet,
    pub sealer: crate::seal::Sealer,
}

pub(super) fn world(review: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let w = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "airlock.toml",
        "[[server]]\nname = \"shop\"\ncommand = \"true\"\nprefix = \"\"\n",
    );
    w("tool-manifests/m.toml", MANIFESTS);
    w("policies/p.toml", &policy(review));
    let setup = load_setup(&dir.path().join("airlock.toml")).unwrap();
    let mut served = ToolSet::default();
    let def = |name: &str| ToolDef {
        server: "shop".into(),
        name: name.into(),
        exposed: name.into(),
        definition: json!({"name": name}),
        definition_hash: format!("hash-{name}"),
    };
    let names = ["echo", "lookup", "refund", "pay", "wipe", "purge", "odd"];
    let problems = served.add(
        "shop",
        names.iter().chain(&["mystery"]).map(|n| def(n)).collect(),
    );
    assert!(problems.is_empty());
    World {
        _dir: dir,
        setup,
        changed: ChangedTools::new(),
        served,
        sealer: crate::seal::Sealer::random().unwrap(),
    }
}

pub(super) fn call(tool: &str, arguments: Value) -> GateCall {
    GateCall {
        actor: Some("agent:a".into()),
        relay: None,
        tool: tool.into(),
        arguments: arguments.as_object().cloned().unwrap_or_default(),
        meta: None,
        cancel: None,
    }
}

/// What a test varies beyond the call.
pub(super) struct Inputs<'a> {
    pub retried: Retried,
    pub usage: &'a State,
    /// Calls of the tool already waiting for review.
    pub waiting: usize,
    /// Whether sealing the redacted values works.
    pub seals: bool,
}

pub(super) fn inputs(usage: &State) -> Inputs<'_> {
    Inputs {
        retried: Retried::found(None, None),
        usage,
        waiting: 0,
        seals: true,
    }
}

/// Plan `c` in `w` and look at the plan through `look`.
pub(super) fn planned<T>(
    w: &World,
    c: &GateCall,
    i: Inputs<'_>,
    look: impl FnOnce(Plan<'_>) -> T,
) -> T {
    let snapshot = Snapshot {
        setup: &w.setup,
        changed: &w.changed,
        served: &w.served,
    };
    let (inc, recorded) = incoming(&snapshot, c, ID, NOW, w.sealer.keys());
    let sealed = match (&recorded.redacted, i.seals) {
        (Some(r), true) => Ok(Some(format!("sealed:{}", r.secrets.len()))),
        (Some(_), false) => Err(" Its redacted values could not be sealed (test)."),
        (None, _) => Ok(None),
    };
    let waiting = |_: &str, _: &str| i.waiting;
    let given = Given {
        snapshot: &snapshot,
        incoming: inc,
        recorded,
        retried: i.retried,
        sealed,
        waiting: &waiting,
    };
    look(plan(given, i.usage as &dyn Usage))
}

/// The message of a plan that refuses (held or not).
pub(super) fn message(p: &Plan<'_>) -> String {
    match &p.step {
        Step::Commit(c) => match &c.then {
            Then::Refuse { message, .. } => message.clone(),
            Then::Forward { .. } => String::new(),
        },
        Step::Fail(why) => why.clone(),
        _ => String::new(),
    }
}

/// What retries found for `c`: its key (with an idempotency key when `keyed`), and the earlier
/// call's entry when `earlier` names an item, attached to.
pub(super) fn retried(w: &World, c: &GateCall, keyed: bool, earlier: Option<Item>) -> Retried {
    let snapshot = Snapshot {
        setup: &w.setup,
        changed: &w.changed,
        served: &w.served,
    };
    let (_, recorded) = incoming(&snapshot, c, ID, NOW, w.sealer.keys());
    let asked = Asked {
        actor: "agent:a",
        server: "shop",
        tool: &c.tool,
        arguments_sha256: &recorded.arguments_sha256,
        idempotency_key: keyed.then_some("k1"),
    };
    let found = earlier.map(|item| {
        let entry: Entry = asked.entry(item.clone(), "call-0", NOW);
        (entry, Retry::Attach(item))
    });
    Retried::found(Some(Fresh::of(&asked, None)), found)
}
