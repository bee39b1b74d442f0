#!/usr/bin/env python3
"""A self-test of tests/peers/channel_receiver.py's unsigned chat paths: it starts the receiver
(on a port the system picks), posts a valid and an invalid Slack Block Kit payload to /slack and a
valid and an invalid Adaptive Card to /teams, and checks the answers and the logged verdicts (also
that `?fail=N` still works there). It prints the log lines. No Rust involved:

    .peers/venv/bin/python3 tests/peers/channel_receiver_selftest.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPROVE = "https://airlock.example/approvals/4f2a"

SLACK_VALID = {
    "text": "Approval needed: github.create_issue by agent ci-bot",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "Approval needed: github.create_issue"}},
        {
            "type": "section",
            "block_id": "call",
            "text": {"type": "mrkdwn", "text": "*ci-bot* wants to call `github.create_issue`."},
            "fields": [
                {"type": "mrkdwn", "text": "*Tool*\ngithub.create_issue"},
                {"type": "mrkdwn", "text": "*Agent*\nci-bot"},
                {"type": "mrkdwn", "text": "*Role*\nreview"},
                {"type": "mrkdwn", "text": "*Expires*\n<!date^1767225600^{date_short_pretty} {time}|2026-01-01 00:00 UTC>"},
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Airlock · approval 4f2a"}]},
        {
            "type": "actions",
            "block_id": "decide",
            "elements": [
                {
                    "type": "button",
                    "action_id": "open",
                    "text": {"type": "plain_text", "text": "Review"},
                    "url": APPROVE,
                    "style": "primary",
                },
                {"type": "button", "action_id": "ledger", "text": {"type": "plain_text", "text": "Ledger"}, "url": APPROVE + "/ledger"},
            ],
        },
    ],
}

SLACK_INVALID = {
    "text": "Approval needed",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}},
        {"type": "actions", "elements": [{"type": "button", "action_id": "open", "url": APPROVE}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}, "colour": "red"},
    ],
}

CARD = {
    "type": "AdaptiveCard",
    "version": "1.5",
    "body": [
        {"type": "TextBlock", "text": "Approval needed: github.create_issue", "size": "Large", "weight": "Bolder", "wrap": True},
        {
            "type": "FactSet",
            "facts": [{"title": "Tool", "value": "github.create_issue"}, {"title": "Agent", "value": "ci-bot"}],
        },
        {
            "type": "RichTextBlock",
            "inlines": [{"type": "TextRun", "text": "Airlock · approval 4f2a", "isSubtle": True}],
        },
        {"type": "ActionSet", "actions": [{"type": "Action.OpenUrl", "title": "Review", "url": APPROVE}]},
    ],
    "actions": [{"type": "Action.OpenUrl", "title": "Open in Airlock", "url": APPROVE}],
}


def teams(card: object) -> dict:
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


TEAMS_VALID = teams(CARD)
TEAMS_INVALID = teams(
    {
        "type": "AdaptiveCard",
        "version": "1.6",
        "body": [
            {"type": "Banner", "text": "no such element"},
            {"text": "a TextBlock without its type"},
        ],
    }
)


def post(port: int, path: str, payload: object) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port_file, log = Path(tmp, "port"), Path(tmp, "received.jsonl")
        env = dict(os.environ, WEBHOOK_SECRET="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        receiver = subprocess.Popen(
            [sys.executable, str(HERE / "channel_receiver.py"), "--port-file", str(port_file), "--log", str(log)],
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists():
                assert receiver.poll() is None and time.monotonic() < deadline, "the receiver did not listen"
                time.sleep(0.05)
            port = int(port_file.read_text())
            answers = [
                post(port, "/slack", SLACK_VALID),
                post(port, "/slack/T0/B0/x", SLACK_INVALID),
                post(port, "/teams", TEAMS_VALID),
                post(port, "/teams", TEAMS_INVALID),
                post(port, "/slack/retry?fail=1", SLACK_VALID),
                post(port, "/slack/retry?fail=1", SLACK_VALID),
            ]
        finally:
            receiver.terminate()
            receiver.wait()
        entries = [json.loads(line) for line in log.read_text().splitlines()]
    for entry in entries:
        print(json.dumps({k: entry[k] for k in ("path", "query", "verified", "schema_errors", "attempt", "status")}))

    assert [a[0] for a in answers] == [200, 400, 200, 400, 503, 200], answers
    assert answers[0][1] == "ok" and answers[2][1] == "ok", answers
    assert all(e["verified"] is None for e in entries), entries
    valid_slack, invalid_slack, valid_teams, invalid_teams, failed, retried = entries
    assert valid_slack["schema_errors"] == [] and valid_teams["schema_errors"] == []
    assert json.loads(answers[1][1])["schema_errors"] == invalid_slack["schema_errors"]
    expect(invalid_slack, ["cannot exceed 150 characters", "missing 1 required keyword-only argument: 'text'", "colour: not in Slack's model"])
    expect(invalid_teams, [".version: 1.6 is newer than 1.5", "body[0]", "body[1]"])
    assert (failed["attempt"], retried["attempt"]) == (1, 2), (failed, retried)
    print("channel_receiver selftest: ok")


def expect(entry: dict, fragments: list[str]) -> None:
    """Each fragment in one of the entry's schema errors, and no more errors than fragments."""
    errors = entry["schema_errors"]
    assert len(errors) == len(fragments), errors
    for fragment in fragments:
        assert any(fragment in e for e in errors), (fragment, errors)


if __name__ == "__main__":
    main()
