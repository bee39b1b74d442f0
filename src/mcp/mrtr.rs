//! Questions from tool servers to agents on protocol 2026-07-28 and later, which has no
//! server-to-client requests: a question (sampling, elicitation, roots) goes out in the call's
//! answer as an `InputRequiredResult` (multi round-trip requests, MRTR), and the agent's retry
//! brings the answers.
//!
//! Owns the calls parked between rounds (under a random 256-bit handle that names this process,
//! bound to the actor, the tool and the arguments' hash, with a deadline), the rounds of one
//! call (its gate call running in a task of its own, raced against the tool server's questions
//! and the agent's cancellation), and the abandonment of a call whose agent never came back
//! (cancelled on its tool server, like a call its agent cancelled).
//!
//! It must never gate a call twice: a retry is matched to its parked call before the gate, and
//! one that matches none, or another actor's, tool or arguments, is refused with the reason,
//! never run. It must never put a question to an agent the relay's single-actor rule would not
//! (the relay decides who is asked; this only carries it), and never trust `requestState`
//! beyond looking it up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, InputRequest, InputRequiredResult, ProgressToken,
    RequestId,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::relay::{Opened, Relay};
use crate::gate::{Gate, GateCall, Reply};

/// A question a tool server asks while it runs a call, waiting for the agent's answer.
pub(super) struct Question {
    request: InputRequest,
    reply: oneshot::Sender<Value>,
    /// How long the tool server waits for the answer (its call timeout).
    timeout: Duration,
}

/// Where the questions about a call go when its agent answers in rounds.
#[derive(Clone)]
pub struct Rounds {
    questions: mpsc::UnboundedSender<Question>,
    /// What the agent declared it can answer, with the request that made the call.
    pub(super) capabilities: ClientCapabilities,
}

/// Whether the agent's request is on 2026-07-28 or later, and then what it can answer.
pub(super) fn speaks_rounds(context: &RequestContext<RoleServer>) -> Option<ClientCapabilities> {
    context
        .protocol_version()
        .filter(|v| *v >= rmcp::model::ProtocolVersion::V_2026_07_28)
        .map(|_| context.client_capabilities().unwrap_or_default())
}

/// Put a question to the agent of a call answered in rounds, and wait for its answer.
pub(super) async fn ask<T: DeserializeOwned>(
    rounds: &Rounds,
    request: InputRequest,
    timeout: Duration,
) -> Result<T, ErrorData> {
    let (reply, answer) = oneshot::channel();
    rounds
        .questions
        .send(Question {
            request,
            reply,
            timeout,
        })
        .map_err(|_| ErrorData::internal_error("the agent's call is over", None))?;
    let value = tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| ErrorData::internal_error("the agent did not answer in time", None))?
        .map_err(|_| {
            ErrorData::internal_error(
                "the agent did not answer (its call was abandoned, cancelled, or the answer was missing)",
                None,
            )
        })?;
    serde_json::from_value(value).map_err(|e| {
        ErrorData::internal_error(
            format!("the agent answered with an unexpected result: {e}"),
            None,
        )
    })
}

/// A call of an agent that answers in rounds: running, or parked between two rounds.
pub(super) struct Waiting {
    actor: String,
    tool: String,
    arguments_sha256: String,
    relay_key: String,
    running: JoinHandle<Reply>,
    questions: mpsc::UnboundedReceiver<Question>,
    /// The questions asked in the last round, by key, waiting for their answers.
    answers: BTreeMap<String, oneshot::Sender<Value>>,
    /// Questions asked so far (for their keys).
    asked: u32,
    route: Opened,
    /// Cancels the call on its tool server (the agent cancelled, or never came back).
    cancel: CancellationToken,
}

/// Calls parked until their agents answer, by handle.
pub struct Parked {
    /// Names this process in every handle it gives out.
    instance: String,
    calls: Mutex<HashMap<String, Waiting>>,
}

impl Default for Parked {
    fn default() -> Self {
        Parked {
            instance: random_hex(8),
            calls: Mutex::default(),
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    // without randomness no handle could be trusted to be unguessable: fail loudly
    if let Err(e) = getrandom::fill(&mut raw) {
        tracing::error!(error = %e, "no randomness for a question handle");
        std::process::abort();
    }
    hex::encode(raw)
}

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How a call's rounds went this time.
pub(super) enum Step {
    /// The tool server asked: the agent gets this, and retries with the answers.
    Asked(InputRequiredResult),
    /// The gate's reply, with the call's route (drop it once the answer is made).
    Done(Reply, Opened),
}

/// The hash a parked call's arguments are bound by.
fn arguments_sha256(arguments: &Map<String, Value>) -> String {
    crate::canonical::sha256_hex(
        crate::canonical::to_string(&Value::Object(arguments.clone())).as_bytes(),
    )
}

/// A call of an agent that answers in rounds: open its route with [`Rounds`] for its questions.
pub(super) struct Start {
    pub relay_key: String,
    pub actor: String,
    rounds: Rounds,
    questions: mpsc::UnboundedReceiver<Question>,
}

impl Start {
    pub fn new(relay_key: String, actor: String, capabilities: ClientCapabilities) -> Start {
        let (tx, questions) = mpsc::unbounded_channel();
        Start {
            relay_key,
            actor,
            rounds: Rounds {
                questions: tx,
                capabilities,
            },
            questions,
        }
    }

    pub fn rounds(&self) -> Rounds {
        self.rounds.clone()
    }

    /// Run the gate call in a task of its own (an answered round must not drop it), and play
    /// the first round.
    pub async fn run(
        self,
        gate: &Arc<Gate>,
        mut call: GateCall,
        route: Opened,
        ct: &CancellationToken,
    ) -> Step {
        let cancel = CancellationToken::new();
        call.cancel = Some(cancel.clone());
        let waiting = Waiting {
            actor: self.actor,
            tool: call.tool.clone(),
            arguments_sha256: arguments_sha256(&call.arguments),
            relay_key: self.relay_key,
            running: {
                let gate = gate.clone();
                tokio::spawn(async move { gate.call(call).await })
            },
            questions: self.questions,
            answers: BTreeMap::new(),
            asked: 0,
            route,
            cancel,
        };
        round(gate.servers().relay(), waiting, ct).await
    }
}

/// Wait for the call's reply, its tool server's next question, or the agent's cancellation.
async fn round(relay: &Arc<Relay>, mut w: Waiting, ct: &CancellationToken) -> Step {
    enum Next {
        Done(Result<Reply, tokio::task::JoinError>),
        Asked(Question),
        Cancelled,
    }
    let next = tokio::select! {
        done = &mut w.running => Next::Done(done),
        Some(q) = w.questions.recv() => Next::Asked(q),
        () = ct.cancelled() => Next::Cancelled,
    };
    let done = match next {
        Next::Done(done) => done,
        Next::Cancelled => {
            // like a call awaited inline: the tool server is told to stop, the outcome stands
            w.cancel.cancel();
            (&mut w.running).await
        }
        Next::Asked(first) => return Step::Asked(park(relay, w, first)),
    };
    let reply = done.unwrap_or_else(|e| Reply::Refused {
        message: format!("Airlock failed while running the call: {e}"),
        details: Value::Null,
    });
    Step::Done(reply, w.route)
}

/// Park the call with the questions asked so far, until the agent retries with the answers.
fn park(relay: &Arc<Relay>, mut w: Waiting, first: Question) -> InputRequiredResult {
    let mut requests = BTreeMap::new();
    let mut timeout = Duration::ZERO;
    let mut next = Some(first);
    while let Some(q) = next {
        w.asked += 1;
        let key = format!("airlock-{}", w.asked);
        timeout = timeout.max(q.timeout);
        requests.insert(key.clone(), q.request);
        w.answers.insert(key, q.reply);
        next = w.questions.try_recv().ok();
    }
    relay.repoint(&w.relay_key, None);
    let handle = format!("{}.{}", relay.parked.instance, random_hex(32));
    tracing::info!(actor = %w.actor, tool = %w.tool, questions = requests.len(), "a tool server's questions go to its agent in the call's answer");
    relay.parked.lock().insert(handle.clone(), w);
    let (relay2, handle2) = (relay.clone(), handle.clone());
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let abandoned = relay2.parked.lock().remove(&handle2);
        if let Some(mut w) = abandoned {
            tracing::warn!(actor = %w.actor, tool = %w.tool, "the agent did not answer its tool server's questions in time; the call is cancelled");
            w.cancel.cancel();
            w.answers.clear();
            // the route lives until the call has ended, so nothing the server still says
            // about it is taken for another call's
            let _ = (&mut w.running).await;
        }
    });
    InputRequiredResult::new(Some(requests), Some(handle))
}

/// An agent's retry with answers: deliver them to the parked call's questions and play the
/// next round, or say why the retry matches no call (it is then not run).
pub(super) async fn resume(
    relay: &Arc<Relay>,
    actor: &str,
    request: CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<Step, String> {
    let state = request.request_state.unwrap_or_default();
    let parked = &relay.parked;
    if state.split_once('.').map(|(i, _)| i) != Some(parked.instance.as_str()) {
        return Err(
            "this requestState was not given out by this Airlock process: another replica asked (send the retry to the replica that answered the call, e.g. with sticky sessions) or Airlock restarted since. Nothing ran for it; call the tool again without requestState"
                .into(),
        );
    }
    let arguments = request.arguments.unwrap_or_default();
    let mut w = {
        let mut calls = parked.lock();
        let Some(w) = calls.remove(&state) else {
            return Err("this requestState names no call waiting for answers: it was answered already, or abandoned (no answer within the tool server's timeout, so the call was cancelled). Nothing ran for it; call the tool again without requestState".into());
        };
        let why = if w.actor != actor {
            Some("this requestState belongs to another agent's call")
        } else if w.tool != request.name || w.arguments_sha256 != arguments_sha256(&arguments) {
            Some(
                "this requestState belongs to a call of another tool or with other arguments; retry with the tool and arguments of the call that asked",
            )
        } else {
            None
        };
        if let Some(why) = why {
            // the call stays parked for its own agent
            calls.insert(state, w);
            return Err(format!("{why}. Nothing ran for it."));
        }
        w
    };
    let mut responses = request.input_responses.unwrap_or_default();
    for (key, reply) in std::mem::take(&mut w.answers) {
        // a question left unanswered gets an error on the tool server (the sender dropped)
        if let Some(answer) = responses.remove(&key) {
            let _ = reply.send(answer);
        }
    }
    relay.repoint(&w.relay_key, Some(repointed(context)));
    Ok(round(relay, w, &context.ct).await)
}

fn repointed(
    context: &RequestContext<RoleServer>,
) -> (Peer<RoleServer>, RequestId, Option<ProgressToken>) {
    (
        context.peer.clone(),
        context.id.clone(),
        context.meta.get_progress_token(),
    )
}
