#!/usr/bin/env python3
"""A webhook receiver for the channel tests: it plays the far end of Airlock's signed-webhook
channel, checks each POST with the Standard Webhooks reference library (PyPI `standardwebhooks`)
and writes down what it got. It also plays the far end of the unsigned chat channels: a POST whose
path starts with `/slack` (a Slack incoming webhook) or `/teams` (a Microsoft Teams Workflows
webhook) is not signature-checked but format-checked by tests/peers/chat_formats.py, with the
official Slack SDK's Block Kit models and the official Adaptive Card 1.5 schema. It never decides
anything: it only records and answers as the test's query string tells it to.

Usage:
    WEBHOOK_SECRET=whsec_... python3 tests/peers/channel_receiver.py --port-file PATH --log PATH

It listens on 127.0.0.1, on a port the system picks, and writes that port to --port-file
(atomically, once listening). Every POST appends one JSON line to --log (flushed and fsynced):
path, query, headers (webhook-id, webhook-timestamp, webhook-signature, content-type,
user-agent), body (JSON, else the text), verified (null on /slack and /teams), error (why
verification failed, else null), schema_errors (on /slack and /teams: why the format is wrong,
empty when right; else null), attempt (how many requests of this message it has seen, from 1: a
message is its webhook-id, or on /slack and /teams without one its path and body) and status
(its answer).

Answers: 413 to a body over 1 MiB (not read); `?fail=N` gives 503 to the first N requests of each
message, then as without it (but 200 to a signed one even when not verified); `?status=CODE`
always gives CODE; otherwise 200 `{"ok":true}` when verified, 401 when not, and on /slack and
/teams 200 with the text `ok` (as Slack answers) when the format is right, 400
`{"schema_errors": [...]}` when not.
GET /health gives 200.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from standardwebhooks import Webhook

from chat_formats import slack_errors, teams_errors

MAX_BODY = 1 << 20
LOGGED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent")
CHAT_CHECKS = {"/slack": slack_errors, "/teams": teams_errors}  # unsigned: format-checked instead


def verify(secret: str, body: bytes, headers: dict[str, str]) -> str | None:
    """None when the reference library accepts the request, else its reason."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except Exception as e:  # WebhookVerificationError, or a malformed header or secret
        return f"{type(e).__name__}: {e}"
    return None


def chat_check(path: str):
    """The format check of an unsigned chat path, or None for a signed webhook."""
    return next((check for prefix, check in CHAT_CHECKS.items() if path.startswith(prefix)), None)


def parse_body(body: bytes) -> object:
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


class Receiver(BaseHTTPRequestHandler):
    server_version = "channel-receiver"
    protocol_version = "HTTP/1.1"
    log_path: str
    secret: str
    lock = threading.Lock()
    seen: Counter[str] = Counter()

    def do_GET(self) -> None:
        self.answer(200 if urlsplit(self.path).path == "/health" else 404, {"ok": True})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("content-length") or 0)
        headers = {k.lower(): v for k, v in self.headers.items()}
        too_big = length > MAX_BODY
        body = b"" if too_big else self.rfile.read(length)
        check = chat_check(url.path)
        error, schema_errors = None, None
        if too_big:
            error = "body over 1 MiB (not read)"
        elif check is None:
            error = verify(self.secret, body, headers)
        else:
            schema_errors = check(parse_body(body))
        with self.lock:
            msg_id = headers.get("webhook-id")
            if msg_id is None and check is not None:
                msg_id = f"{url.path} {hashlib.sha256(body).hexdigest()}"
            self.seen[msg_id or ""] += 1
            attempt = self.seen[msg_id or ""]
            if too_big:
                self.close_connection = True
                status = 413
            elif "status" in query:
                status = int(query["status"])
            elif "fail" in query and attempt <= int(query["fail"]):
                status = 503
            elif check is not None:
                status = 400 if schema_errors else 200
            elif "fail" in query or error is None:
                status = 200
            else:
                status = 401
            entry = {
                "path": url.path,
                "query": query,
                "headers": {h: headers.get(h) for h in LOGGED_HEADERS},
                "body": parse_body(body),
                "verified": None if check is not None else error is None,
                "error": error,
                "schema_errors": schema_errors,
                "attempt": attempt,
                "status": status,
            }
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")
                log.flush()
                os.fsync(log.fileno())
        if check is not None and status == 200:
            self.answer_text(status, "ok")
        elif schema_errors:
            self.answer(status, {"schema_errors": schema_errors})
        else:
            self.answer(status, {"ok": True} if status == 200 else {"error": error or f"status {status}"})

    def answer(self, status: int, payload: dict[str, object]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # the log file says it all
        pass


def main() -> None:
    parser = argparse.ArgumentParser(prog="channel_receiver.py")
    parser.add_argument("--port-file", required=True, help="where to write the port, once listening")
    parser.add_argument("--log", required=True, help="the JSON-lines file of what arrived")
    opts = parser.parse_args()
    Receiver.secret = os.environ["WEBHOOK_SECRET"]
    Receiver.log_path = opts.log
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    tmp = f"{opts.port_file}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, opts.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
