//! Approval channels: signed webhooks (Standard Webhooks), delivered to a receiver that verifies
//! them with the scheme's reference library (`tests/peers/channel_receiver.py`).

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Receiver, python};

/// A Standard Webhooks secret (the scheme's own example).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Another secret, which the receiver does not know.
const FORGER: &str = "whsec_YSBmb3JnZWQga2V5LCBub3QgdGhlIHJlYWwgb25lISE=";

/// Posts one event signed with argv[2] and the same event signed with argv[3] to argv[1],
/// signed by the reference library; prints the two status codes.
const SIGN_AND_POST: &str = r#"
import json, sys, urllib.error, urllib.request
from datetime import datetime, timezone
from standardwebhooks import Webhook
url, secret, forger = sys.argv[1:4]
body = json.dumps({"type": "approval.opened", "data": {"approval_id": "a1"}})
now = datetime.now(timezone.utc)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
statuses = []
for msg_id, key in (("msg_signed", secret), ("msg_forged", forger)):
    headers = {"content-type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(key).sign(msg_id, now, body)}
    request = urllib.request.Request(url, body.encode(), headers, method="POST")
    try:
        with opener.open(request, timeout=30) as answer:
            statuses.append(answer.status)
    except urllib.error.HTTPError as answer:
        statuses.append(answer.code)
print(json.dumps(statuses))
"#;

#[ignore = "needs standardwebhooks; scripts/test runs it"]
#[test]
fn the_receiver_verifies_a_standard_webhook_signed_by_python_and_refuses_a_forged_one() {
    let receiver = Receiver::start(SECRET);
    let out = Command::new(python())
        .args(["-c", SIGN_AND_POST, &receiver.url("/hooks/airlock"), SECRET, FORGER])
        .output()
        .expect("python (the peers' virtual environment)");
    assert!(
        out.status.success(),
        "the signing snippet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses: Value = serde_json::from_slice(&out.stdout).expect("the statuses as JSON");
    assert_eq!(statuses, json!([200, 401]));

    let entries = receiver.wait_for(2, Duration::from_secs(10));
    let (signed, forged) = (&entries[0], &entries[1]);
    assert_eq!(signed["path"], "/hooks/airlock");
    assert_eq!(signed["headers"]["webhook-id"], "msg_signed");
    assert_eq!(signed["body"]["data"]["approval_id"], "a1");
    assert_eq!(signed["verified"], true, "{signed}");
    assert_eq!(signed["error"], Value::Null);
    assert_eq!((&signed["attempt"], &signed["status"]), (&json!(1), &json!(200)));
    assert_eq!(forged["headers"]["webhook-id"], "msg_forged");
    assert_eq!(forged["verified"], false, "{forged}");
    assert!(
        forged["error"].as_str().unwrap_or("").contains("No matching signature"),
        "{forged}"
    );
    assert_eq!((&forged["attempt"], &forged["status"]), (&json!(1), &json!(401)));
}
