#!/usr/bin/env python3
"""bench/floods.py: the client side of bench/floods (Python standard library only).

Subcommands (bench/floods calls them; each prints JSON or text on stdout):
  schema-keys TABLE        keys of config table TABLE in `airlock schema config` (read on stdin)
  call URL TOKEN TOOL ARGS one MCP session over HTTP (initialize, initialized, tools/call): the result
  link OUTBOX              the first approval link (/a/...) in the outbox's .eml messages
  run FLOOD                one flood against a running gate, measured (knobs from the environment),
                           the policy file edited once during it (a live reload, read from the
                           gate's log): writes a JSON result to --out
  table RESULT...          the markdown tables of the results: one row per flood, then each flood

Everything it talks to is on 127.0.0.1; every flood is bounded in count and in time.
"""

import argparse
import email
import email.policy
import http.client
import ipaddress
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

PROTOCOL = "2025-11-25"
FLOODS = ["slowloris", "slowloris-shared", "sessions", "refused", "approvals", "drip"]
OWN_SESSIONS = 8


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def env_float(name, default):
    v = os.environ.get(name, "")
    return float(v) if v.strip() else default


# ---- MCP over streamable HTTP, raw JSON-RPC --------------------------------------------------


class Mcp:
    """One keep-alive HTTP/1.1 connection to the gate's /mcp, with one bearer token."""

    def __init__(self, url, token, timeout=120):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = u.hostname, u.port, u.path or "/mcp"
        self.token, self.timeout = token, timeout
        self.conn = None
        self.next_id = 1

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, body, session=None):
        """POST one JSON-RPC message: (status, session id answered, body text)."""
        data = json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        if session:
            headers["Mcp-Session-Id"] = session
            headers["MCP-Protocol-Version"] = PROTOCOL
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", self.path, body=data, headers=headers)
                r = self.conn.getresponse()
                text = r.read().decode("utf-8", "replace")
                if (r.getheader("Connection") or "").lower() == "close":
                    self.close()
                return r.status, r.getheader("mcp-session-id"), text
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a kept-alive connection the server had closed: once more on a fresh one
                self.close()
                if attempt == 1:
                    raise
            except Exception:
                self.close()
                raise
        raise AssertionError("unreachable")

    def request(self, method, params=None, session=None):
        """A request: (status, session id, the JSON-RPC answer or None, body text)."""
        rid = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        status, sid, text = self.post(msg, session)
        return status, sid, answer_in(text, rid), text

    def initialize(self):
        return self.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench-floods", "version": "1"}},
        )

    def open_session(self):
        """A ready session (initialize, then notifications/initialized); raises on refusal."""
        status, sid, _, text = self.initialize()
        if status != 200 or not sid:
            raise RuntimeError(f"initialize refused: HTTP {status}: {text[:200]}")
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        return sid

    def call(self, session, tool, arguments):
        """tools/call: (status, result or None, body text)."""
        status, _, ans, text = self.request("tools/call", {"name": tool, "arguments": arguments}, session)
        return status, (ans or {}).get("result"), text


def answer_in(text, rid):
    """The JSON-RPC message with id `rid` in a JSON body or an SSE stream."""
    candidates = []
    stripped = text.lstrip()
    if stripped.startswith("{"):
        candidates.append(stripped)
    else:
        for line in text.splitlines():
            if line.startswith("data:"):
                candidates.append(line[5:].strip())
    for c in candidates:
        try:
            m = json.loads(c)
        except ValueError:
            continue
        if isinstance(m, dict) and m.get("id") == rid:
            return m
    return None


def decision_of(result):
    meta = (result or {}).get("_meta") or {}
    if "airlock/approval" in meta:
        return "approval " + str(meta["airlock/approval"].get("state"))
    d = meta.get("airlock/decision") or {}
    if d:
        return str(d.get("verdict"))
    if result is None:
        return "no result"
    return "error result" if result.get("isError") else "ok"


# ---- measuring the gate ---------------------------------------------------------------------


def proc_sample(pid):
    """(VmRSS kB, descriptors) of pid, or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None


def file_size(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def ledger_rows(healthz, timeout):
    """The ledger's row count as `/healthz` reports it, or None."""
    p = subprocess.run(["curl", "-fsS", "--max-time", str(timeout), healthz], capture_output=True, text=True)
    try:
        return int(json.loads(p.stdout)["ledger"]["rows"])
    except (ValueError, KeyError, TypeError):
        return None


def du_sb(path):
    """`du -sb` of a directory, in bytes (0 when it does not exist yet)."""
    if not os.path.exists(path):
        return 0
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


class Sampler(threading.Thread):
    """RSS, descriptors and ledger size of the gate, every `every` seconds, peaks kept."""

    def __init__(self, pid, ledger, every):
        super().__init__(daemon=True)
        self.pid, self.ledger, self.every = pid, ledger, every
        self.stop = threading.Event()
        self.peak_rss = self.peak_fds = self.peak_ledger = 0
        self.samples = 0
        self.gone_at = None

    def run(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            s = proc_sample(self.pid)
            if s is None:
                self.gone_at = round(time.monotonic() - t0, 1)
                return
            self.peak_rss = max(self.peak_rss, s[0])
            self.peak_fds = max(self.peak_fds, s[1])
            self.peak_ledger = max(self.peak_ledger, file_size(self.ledger))
            self.samples += 1
            self.stop.wait(self.every)


def curl_probe(url, timeout):
    """One GET through curl: (answered, seconds, what happened)."""
    t0 = time.monotonic()
    p = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", str(timeout), url],
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - t0
    code = p.stdout.strip() or "000"
    if p.returncode == 0 and code == "200":
        return True, took, "200"
    if p.returncode == 28:
        return False, took, f"no answer within {timeout:g} s"
    if p.returncode == 0:
        return False, took, f"HTTP {code}"
    what = CURL_ERRORS.get(p.returncode, "failed")
    return False, took, f"{what} (curl exit {p.returncode})"


CURL_ERRORS = {7: "connection refused", 52: "closed without an answer", 55: "send failed", 56: "connection reset"}


class Prober(threading.Thread):
    """GETs each URL every `every` seconds (the URLs in parallel), until stopped."""

    def __init__(self, urls, every, timeout):
        super().__init__(daemon=True)
        self.urls, self.every, self.timeout = urls, every, timeout
        self.stop = threading.Event()
        self.results = {name: [] for name in urls}

    def probe_once(self):
        threads = []
        for name, url in self.urls.items():
            t = threading.Thread(target=lambda n=name, u=url: self.results[n].append(curl_probe(u, self.timeout)))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()

    def run(self):
        # the first probe once the flood has had a moment to build up
        if self.stop.wait(min(1.0, self.every)):
            return
        while True:
            t0 = time.monotonic()
            self.probe_once()
            if self.stop.wait(max(0.0, self.every - (time.monotonic() - t0))):
                return


RELOAD_SAYS = (
    ("applied", "configuration reloaded"),
    ("rejected", "edited configuration rejected"),
    ("failed", "cannot record the reload"),
)


class Reloader(threading.Thread):
    """At `at` seconds, edits the policy file the gate watches (its `version` gets a suffix: a
    valid edit), then reads the gate's log for how the reload ended, for `wait` seconds at most."""

    def __init__(self, policy, log, at, wait):
        super().__init__(daemon=True)
        self.policy, self.log, self.at, self.wait = policy, log, at, wait
        self.stop = threading.Event()
        self.result = None

    def run(self):
        t0 = time.monotonic()
        if self.stop.wait(self.at):
            return
        with open(self.policy) as f:
            text = f.read()
        new, n = re.subn(r'^(version\s*=\s*")([^"]*)(")', r"\1\2+bench-reload\3", text, count=1, flags=re.M)
        if n != 1:
            self.result = {"outcome": "not tried", "detail": f"no `version = \"…\"` line in {self.policy}"}
            return
        offset = file_size(self.log)
        with open(self.policy, "w") as f:
            f.write(new)
        edited = time.monotonic()
        self.result = {"edited_at_s": round(edited - t0, 1), "outcome": "none logged", "detail": f"nothing about a reload in the gate's log within {self.wait:g} s"}
        while time.monotonic() - edited < self.wait:
            with open(self.log, "rb") as f:
                f.seek(offset)
                lines = f.read().decode("utf-8", "replace").splitlines()
            for i, line in enumerate(lines):
                for outcome, says in RELOAD_SAYS:
                    if says in line:
                        # a rejection's reasons follow on the next lines
                        detail = " ".join(l.strip() for l in lines[i : i + 3] if l.strip())
                        self.result.update(outcome=outcome, after_s=round(time.monotonic() - edited, 1), detail=detail[:400])
                        return
            time.sleep(0.1)


def summarize(probes):
    answered = [t for ok, t, _ in probes if ok]
    failed = [w for ok, _, w in probes if not ok]
    return {
        "answered": len(answered),
        "total": len(probes),
        "worst_ms": round(max(t for _, t, _ in probes) * 1000) if probes else None,
        "worst_answered_ms": round(max(answered) * 1000) if answered else None,
        "first_failure": failed[0] if failed else None,
    }


def still_serving(url, token):
    """A new session and one tools/call of `echo` (another agent than the flooding one, whose
    own sessions may rightly be refused after a session flood): (ok, ms, detail)."""
    t0 = time.monotonic()
    m = Mcp(url, token, timeout=30)
    try:
        sid = m.open_session()
        status, result, text = m.call(sid, "echo", {"text": "still here"})
        ms = round((time.monotonic() - t0) * 1000)
        content = (result or {}).get("content") or [{}]
        if status == 200 and result and not result.get("isError") and content[0].get("text") == "still here":
            return True, ms, "echo answered"
        return False, ms, f"HTTP {status}: {text[:200]}"
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        return False, round((time.monotonic() - t0) * 1000), f"{type(e).__name__}: {e}"[:200]
    finally:
        m.close()


def pool(n, conc, work):
    """Run work(i) for i in 0..n on `conc` threads; the list of its returns in order."""
    out = [None] * n
    lock = threading.Lock()
    nxt = [0]

    def worker():
        ctx = {}
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                break
            out[i] = work(i, ctx)
        for v in ctx.values():
            if hasattr(v, "close"):
                v.close()

    threads = [threading.Thread(target=worker) for _ in range(max(1, min(conc, n)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# ---- the floods -----------------------------------------------------------------------------


def read_answers(sel, timeout, drop):
    """Wait up to `timeout` for the held connections: each that answered or closed is dropped
    with what it said (the first line of the answer) or how it ended."""
    for key, _ in sel.select(timeout=timeout):
        s = key.fileobj
        try:
            got = s.recv(256)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as e:
            drop(s, f"reset ({type(e).__name__})")
            continue
        first = got.split(b"\r\n", 1)[0].decode("latin-1")
        drop(s, f"answered `{first}` and closed" if got else "closed without answering")


def flood_slowloris(a, notes, shared=False):
    """Slow-loris from SLOW_FROM (and SLOW_SOURCES − 1 more addresses); `shared`: from 127.0.0.1,
    the probes' own address, as every client behind one proxy."""
    conns = env_int("SLOW_CONNS", 400)
    hold = env_float("HOLD", 25)
    every = env_float("SLOW_EVERY", 3)
    if shared:
        sources = ["127.0.0.1"]
    else:
        start_ip = ipaddress.ip_address(os.environ.get("SLOW_FROM") or "127.0.0.2")
        sources = [str(start_ip + k) for k in range(max(1, env_int("SLOW_SOURCES", 1)))]
    if not all(ipaddress.ip_address(s).is_loopback for s in sources):
        raise SystemExit(f"SLOW_FROM/SLOW_SOURCES must stay on loopback: {sources[0]}..{sources[-1]}")
    u = urllib.parse.urlsplit(a.url)
    host, port = u.hostname, u.port
    head = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench-floods\r\n".encode()
    sel = selectors.DefaultSelector()
    stats = {"opened": 0, "connect_failed": 0, "closed_by_gate": 0, "first_close": None, "first_connect_error": None}
    live = {}  # socket -> when it was opened
    ages = []  # how long each connection the gate closed had been open
    turn = [0]

    def open_one():
        src = sources[turn[0] % len(sources)]
        turn[0] += 1
        try:
            s = socket.create_connection((host, port), timeout=1, source_address=(src, 0))
            s.sendall(head)
            s.setblocking(False)
        except OSError as e:
            stats["connect_failed"] += 1
            stats["first_connect_error"] = stats["first_connect_error"] or f"{type(e).__name__}: {e}"
            return
        stats["opened"] += 1
        live[s] = time.monotonic()
        sel.register(s, selectors.EVENT_READ)

    def drop(s, what):
        stats["closed_by_gate"] += 1
        if stats["first_close"] is None:
            stats["first_close"] = what
        ages.append(time.monotonic() - live.pop(s))
        sel.unregister(s)
        s.close()

    t0 = time.monotonic()
    for _ in range(conns):
        open_one()
    where = sources[0] if len(sources) == 1 else f"{sources[0]}–{sources[-1]}"
    notes.append(f"the slow connections come from {where}, the probes from 127.0.0.1; opening {conns} took {time.monotonic() - t0:.1f} s")
    end = time.monotonic() + hold
    tick, line = time.monotonic() + every, 0
    peak_live = len(live)
    while time.monotonic() < end:
        read_answers(sel, max(0.0, min(tick, end) - time.monotonic()), drop)
        if time.monotonic() >= tick and time.monotonic() < end:
            line += 1
            for s in list(live):
                try:
                    s.send(f"X-Slow-{line}: {line}\r\n".encode())
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    drop(s, f"send failed ({type(e).__name__})")
            # a slow-loris reopens what the gate closed, to keep its count
            for _ in range(conns - len(live)):
                open_one()
            peak_live = max(peak_live, len(live))
            tick += every
    open_at_end = len(live)
    at_once = sum(1 for t in ages if t < 1)
    later = sorted(t for t in ages if t >= 1)
    for s in list(live):
        sel.unregister(s)
        s.close()
    notes.append(
        f"{stats['opened']} connections opened over the hold (incl. reopened), {stats['connect_failed']} connects failed"
        + (f" (first: {stats['first_connect_error']})" if stats["first_connect_error"] else "")
        + f"; {stats['closed_by_gate']} closed by the gate"
        + (f" (first: {stats['first_close']})" if stats["first_close"] else "")
        + (f": {at_once} within 1 s of opening, {len(later)} later" if ages else "")
        + (f" (after {later[0]:.1f}–{later[-1]:.1f} s, median {later[len(later) // 2]:.1f} s)" if later else "")
        + f"; {open_at_end} still open at the end (a header line every {every:g} s, {line} lines sent)"
    )
    return {"connections": conns, "hold_s": hold, **stats, "open_at_end": open_at_end, "peak_open": peak_live, "closed_at_once": at_once, "closed_later": len(later)}


def flood_drip(a, notes):
    """DRIP_CONNS connections from DRIP_FROM that send a POST's headers (Content-Length
    DRIP_LENGTH) to the approval link (DRIP_TO=page, a form) or /mcp (DRIP_TO=mcp, JSON with the
    flooding agent's token), then one byte of its body every DRIP_EVERY s, for DRIP_HOLD s;
    connections the gate closes are reopened. No body is ever finished."""
    conns = env_int("DRIP_CONNS", 100)
    hold = env_float("DRIP_HOLD", 40)
    every = env_float("DRIP_EVERY", 2)
    length = env_int("DRIP_LENGTH", 100_000)
    src = os.environ.get("DRIP_FROM") or "127.0.0.2"
    to = os.environ.get("DRIP_TO") or "page"
    if not ipaddress.ip_address(src).is_loopback:
        raise SystemExit(f"DRIP_FROM must stay on loopback: {src}")
    u = urllib.parse.urlsplit(a.url)
    host, port = u.hostname, u.port
    if to == "page":
        path = urllib.parse.urlsplit(a.page).path
        extra = "Content-Type: application/x-www-form-urlencoded\r\n"
    elif to == "mcp":
        path = u.path or "/mcp"
        extra = (
            f"Authorization: Bearer {a.token}\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\n"
        )
    else:
        raise SystemExit(f"DRIP_TO is page or mcp, not {to!r}")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench-floods\r\n{extra}"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    sel = selectors.DefaultSelector()
    stats = {"opened": 0, "connect_failed": 0, "closed_by_gate": 0, "first_close": None, "first_connect_error": None, "bytes_dripped": 0}
    live = {}  # socket -> [when it was opened, body bytes sent]
    ages, sent_when_closed = [], []

    def open_one():
        try:
            s = socket.create_connection((host, port), timeout=1, source_address=(src, 0))
            s.sendall(head)
            s.setblocking(False)
        except OSError as e:
            stats["connect_failed"] += 1
            stats["first_connect_error"] = stats["first_connect_error"] or f"{type(e).__name__}: {e}"
            return
        stats["opened"] += 1
        live[s] = [time.monotonic(), 0]
        sel.register(s, selectors.EVENT_READ)

    def drop(s, what):
        stats["closed_by_gate"] += 1
        if stats["first_close"] is None:
            stats["first_close"] = what
        opened, sent = live.pop(s)
        ages.append(time.monotonic() - opened)
        sent_when_closed.append(sent)
        sel.unregister(s)
        s.close()

    t0 = time.monotonic()
    for _ in range(conns):
        open_one()
    notes.append(f"the dripping connections come from {src}, the probes from 127.0.0.1; opening {conns} took {time.monotonic() - t0:.1f} s")
    end = time.monotonic() + hold
    tick = time.monotonic() + every
    while time.monotonic() < end:
        read_answers(sel, max(0.0, min(tick, end) - time.monotonic()), drop)
        if time.monotonic() >= tick and time.monotonic() < end:
            for s in list(live):
                try:
                    if s.send(b"x") == 1:
                        live[s][1] += 1
                        stats["bytes_dripped"] += 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    drop(s, f"send failed ({type(e).__name__})")
            # an attacker reopens what the gate closed, to keep its count
            for _ in range(conns - len(live)):
                open_one()
            tick += every
    open_at_end = len(live)
    oldest_open = max((time.monotonic() - o for o, _ in live.values()), default=0.0)
    for s in list(live):
        sel.unregister(s)
        s.close()
    at_once = sum(1 for t in ages if t < 1)
    later = sorted(t for t in ages if t >= 1)
    notes.append(
        f"POST {'the approval link' if to == 'page' else '/mcp with the flooding agent’s token'}, Content-Length {length:,}, "
        f"then one body byte every {every:g} s for {hold:g} s: {stats['opened']} connections opened (incl. reopened), "
        f"{stats['connect_failed']} connects failed"
        + (f" (first: {stats['first_connect_error']})" if stats["first_connect_error"] else "")
        + f"; {stats['closed_by_gate']} closed by the gate"
        + (f" (first: {stats['first_close']})" if stats["first_close"] else "")
        + (f": {at_once} within 1 s of opening, {len(later)} later" if ages else "")
        + (f" (after {later[0]:.1f}–{later[-1]:.1f} s, median {later[len(later) // 2]:.1f} s)" if later else "")
        + (f", with {max(sent_when_closed)} body bytes at most sent" if sent_when_closed else "")
        + f"; {open_at_end} still open at the end (the oldest {oldest_open:.1f} s); {stats['bytes_dripped']:,} body bytes dripped in all"
    )
    return {
        "connections": conns,
        "hold_s": hold,
        "to": to,
        **stats,
        "open_at_end": open_at_end,
        "oldest_open_s": round(oldest_open, 1),
        "closed_at_once": at_once,
        "closed_later": len(later),
        "closed_after_s": [round(later[0], 1), round(later[len(later) // 2], 1), round(later[-1], 1)] if later else None,
    }


def flood_sessions(a, notes):
    n = env_int("SESSIONS_N", 5000)
    conc = env_int("FLOOD_CONC", 4)

    def one(i, ctx):
        m = ctx.setdefault("mcp", Mcp(a.url, a.token, timeout=30))
        try:
            status, sid, _, text = m.initialize()
        except Exception as e:  # noqa: BLE001
            return ("error", f"{type(e).__name__}: {e}"[:200])
        if status == 200 and sid:
            return ("ok", None)
        return (status, text.strip()[:200])

    got = pool(n, conc, one)
    ok = sum(1 for s, _ in got if s == "ok")
    refused = [(s, b) for s, b in got if s != "ok"]
    notes.append(f"{n} initializes with one token on {conc} connections: {ok} answered 200 with a session")
    if refused:
        first = refused[0]
        notes.append(f"{len(refused)} refused or failed; the first: {first[0]} `{first[1]}`")
    else:
        notes.append("none refused")
    return {"initializes": n, "accepted": ok, "refused": len(refused), "first_refusal": refused[0] if refused else None}


def check_sessions(url, token, sessions):
    """How many of `sessions` still answer tools/list; the first failure."""
    m = Mcp(url, token, timeout=30)
    ok, first = 0, None
    for sid in sessions:
        try:
            status, _, ans, text = m.request("tools/list", {}, sid)
            if status == 200 and ans and "result" in ans:
                ok += 1
            elif first is None:
                first = f"HTTP {status} `{text.strip()[:120]}`"
        except Exception as e:  # noqa: BLE001
            first = first or f"{type(e).__name__}: {e}"[:200]
    m.close()
    return ok, first


def big_calls(a, notes, tool, make_args, n, what):
    conc = env_int("FLOOD_CONC", 4)

    def one(i, ctx):
        m = ctx.setdefault("mcp", Mcp(a.url, a.token, timeout=120))
        try:
            if "sid" not in ctx:
                ctx["sid"] = m.open_session()
            status, result, text = m.call(ctx["sid"], tool, make_args(i))
        except Exception as e:  # noqa: BLE001
            return f"failed: {type(e).__name__}"
        return decision_of(result) if status == 200 else f"HTTP {status}"

    t0 = time.monotonic()
    got = pool(n, conc, one)
    took = time.monotonic() - t0
    counts = {}
    for g in got:
        counts[g] = counts.get(g, 0) + 1
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    notes.append(f"{n} calls of `{tool}` ({what}) on {conc} connections in {took:.1f} s; answers: {answers}")
    return {"calls": n, "answers": counts, "seconds": round(took, 1)}


def filler(i, size):
    head = f"flood call {i}: "
    return head + "x" * max(0, size - len(head))


def flood_refused(a, notes):
    n = env_int("REFUSED_N", 150)
    size = env_int("ARG_BYTES", 900_000)
    return big_calls(a, notes, "delete_customer", lambda i: {"email": filler(i, size)}, n, f"class destructive, path deny; {size:,} bytes of arguments each")


def flood_approvals(a, notes):
    n = env_int("APPROVALS_N", 40)
    size = env_int("ARG_BYTES", 900_000)
    return big_calls(
        a,
        notes,
        "refund_order",
        lambda i: {"order_id": "A-1001", "amount_cents": i + 1, "reason": filler(i, size)},
        n,
        f"class financial, needs approval; {size:,} bytes of arguments each",
    )


def reload_at(flood):
    """When the policy file is edited: RELOAD_AT s into the flood, by default halfway through a
    timed flood and 1 s into a counted one (which may end sooner: then it is not tried)."""
    v = env_float("RELOAD_AT", -1)
    if v >= 0:
        return v
    if flood in ("slowloris", "slowloris-shared"):
        return env_float("HOLD", 25) / 2
    if flood == "drip":
        return env_float("DRIP_HOLD", 40) / 2
    return 1.0


def run(a):
    notes = []
    sample_every = env_float("SAMPLE_MS", 200) / 1000
    probe_every = env_float("PROBE_EVERY", 3)
    probe_timeout = env_float("PROBE_TIMEOUT", 2)
    settle = env_float("SETTLE", 3)
    healthz = a.url.rstrip("/") + "/healthz"
    base = a.url.rstrip("/") + "/mcp"
    urls = {"healthz": healthz, "page": a.page}
    extra = {}

    # sessions opened before the flood: the flooding agent's own, and another agent's
    own, other = [], []
    if a.flood == "sessions":
        for token, into in ((a.token, own), (a.token2, other)):
            m = Mcp(base, token)
            for _ in range(OWN_SESSIONS):
                into.append(m.open_session())
            m.close()
        extra["own_before"], _ = check_sessions(base, a.token, own)
        extra["other_before"], _ = check_sessions(base, a.token2, other)

    time.sleep(0.5)
    before = proc_sample(a.pid)
    if before is None:
        raise SystemExit(f"the gate (pid {a.pid}) is not running")
    ledger0, outbox0 = file_size(a.ledger), du_sb(a.outbox)
    log0 = file_size(a.log)
    rows0 = ledger_rows(healthz, 10)
    outbox_files0 = count_eml(a.outbox)
    sampler = Sampler(a.pid, a.ledger, sample_every)
    prober = Prober(urls, probe_every, probe_timeout)
    reloader = Reloader(a.policy, a.log, reload_at(a.flood), env_float("RELOAD_WAIT", 10)) if env_int("RELOAD", 1) else None
    sampler.start()
    prober.start()
    t0 = time.monotonic()
    if reloader:
        reloader.start()
    cfg = {"url": base, "token": a.token, "page": a.page}
    args = argparse.Namespace(**cfg)
    if a.flood == "slowloris":
        extra.update(flood_slowloris(args, notes))
    elif a.flood == "slowloris-shared":
        extra.update(flood_slowloris(args, notes, shared=True))
    elif a.flood == "drip":
        extra.update(flood_drip(args, notes))
    elif a.flood == "sessions":
        extra.update(flood_sessions(args, notes))
    elif a.flood == "refused":
        extra.update(flood_refused(args, notes))
    elif a.flood == "approvals":
        extra.update(flood_approvals(args, notes))
    took = time.monotonic() - t0
    prober.stop.set()
    prober.join()
    if not any(prober.results.values()):
        prober.probe_once()  # a flood too short for the interval: one probe right at its end
    sampler.stop.set()
    sampler.join()
    reload = None
    if reloader:
        reloader.stop.set()  # not yet edited: the flood was over first, and it is not tried
        reloader.join()
        reload = reloader.result or {"outcome": "not tried", "detail": f"the flood ended before {reloader.at:g} s"}
        reload["during"] = reload.get("edited_at_s") is not None and reload["edited_at_s"] < took
        if "edited_at_s" in reload:
            notes.append(
                f"live reload: the policy file's `version` edited {reload['edited_at_s']} s into the flood"
                + ("" if reload["during"] else " (after it had ended)")
                + f": {reload['outcome']}"
                + (f" {reload['after_s']} s later" if "after_s" in reload else "")
                + f" — `{reload['detail']}`"
            )
        else:
            notes.append(f"live reload: not tried ({reload['detail']})")

    time.sleep(settle)
    after = proc_sample(a.pid)
    after_probes = {name: curl_probe(url, probe_timeout) for name, url in urls.items()}
    serving = still_serving(base, a.token2) if after else (False, 0, "the gate has exited")
    if a.flood == "sessions":
        own_ok, own_fail = check_sessions(base, a.token, own)
        other_ok, other_fail = check_sessions(base, a.token2, other)
        notes.append(
            f"the flooding agent's {OWN_SESSIONS} sessions opened before: {extra['own_before']}/{OWN_SESSIONS} answered tools/list before, "
            f"{own_ok}/{OWN_SESSIONS} after" + (f" (first failure: {own_fail})" if own_fail else "")
        )
        notes.append(
            f"another agent's {OWN_SESSIONS} sessions: {extra['other_before']}/{OWN_SESSIONS} before, {other_ok}/{OWN_SESSIONS} after"
            + (f" (first failure: {other_fail})" if other_fail else "")
        )
        extra.update(own_after=own_ok, other_after=other_ok)
        m = Mcp(base, a.token, timeout=30)
        try:
            status, _, _, text = m.initialize()
            notes.append(f"the flooding agent's next `initialize` after the flood: HTTP {status}" + ("" if status == 200 else f" `{text.strip()[:120]}`"))
        except Exception as e:  # noqa: BLE001
            notes.append(f"the flooding agent's next `initialize` after the flood: {type(e).__name__}: {e}"[:200])
        m.close()
        if before and sampler.peak_rss and extra.get("accepted"):
            per = (sampler.peak_rss - before[0]) / extra["accepted"]
            notes.append(f"RSS peak − before, per session accepted: {per:.1f} KiB")
    ledger1, outbox1 = file_size(a.ledger), du_sb(a.outbox)
    rows1 = ledger_rows(healthz, 10) if after else None
    emfile = out_of_descriptors(a.log, log0)
    if emfile["count"]:
        notes.append(f"**the gate ran out of descriptors {emfile['count']} time(s)** (EMFILE in its log; the samples every {sample_every * 1000:g} ms can miss such a peak); the first: `{emfile['first']}`")
    if a.flood in ("refused", "approvals") and extra.get("calls"):
        notes.append(
            f"ledger file growth per call: {(ledger1 - ledger0) / extra['calls']:,.0f} bytes"
            + (f"; {(rows1 - rows0) / extra['calls']:.1f} rows per call" if rows0 is not None and rows1 is not None else "")
            + " (redb grows its file in steps: the file's size, not the bytes written)"
        )
    if a.flood == "approvals" and extra.get("calls"):
        mails = count_eml(a.outbox) - outbox_files0
        notes.append(f"outbox: {mails} messages written, {(outbox1 - outbox0) / extra['calls']:,.0f} bytes per call")
    if sampler.gone_at is not None:
        notes.append(f"**the gate exited {sampler.gone_at} s into the flood**")
    result = {
        "flood": a.flood,
        "seconds": round(took, 1),
        "rss_kb": [before[0], sampler.peak_rss or None, after[0] if after else None],
        "fds": [before[1], sampler.peak_fds or None, after[1] if after else None],
        "ledger": [ledger0, sampler.peak_ledger or None, ledger1],
        "rows": [rows0, rows1],
        "outbox": [outbox0, None, outbox1],
        "samples": sampler.samples,
        "probes": {name: summarize(p) for name, p in prober.results.items()},
        "after_probes": {name: {"answered": ok, "ms": round(t * 1000), "what": w} for name, (ok, t, w) in after_probes.items()},
        "serving_after": {"ok": serving[0], "ms": serving[1], "detail": serving[2]},
        "reload": reload,
        "emfile": emfile,
        "notes": notes,
        "extra": extra,
        "title": a.title,
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


def out_of_descriptors(log, offset):
    """Lines of the gate's log since `offset` that say it ran out of descriptors (EMFILE)."""
    with open(log, "rb") as f:
        f.seek(offset)
        lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if "os error 24" in l or "Too many open files" in l]
    return {"count": len(lines), "first": lines[0][:300] if lines else None}


def count_eml(outbox):
    try:
        return sum(1 for n in os.listdir(outbox) if n.endswith(".eml"))
    except FileNotFoundError:
        return 0


# ---- small commands -------------------------------------------------------------------------


def cmd_call(a):
    m = Mcp(a.url, a.token, timeout=60)
    sid = m.open_session()
    status, result, text = m.call(sid, a.tool, json.loads(a.args))
    m.close()
    print(json.dumps({"status": status, "decision": decision_of(result), "result": result}))


def cmd_link(a):
    links = []
    for name in sorted(os.listdir(a.outbox)):
        if not name.endswith(".eml"):
            continue
        with open(os.path.join(a.outbox, name), "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        body = msg.get_body(("plain",))
        text = body.get_content() if body else ""
        links += re.findall(r"https?://\S+/a/[0-9a-f-]+/\d+/[0-9a-f]+", text)
    if not links:
        raise SystemExit(f"no approval link in {a.outbox}")
    print(links[0])


def cmd_schema_keys(a):
    schema = json.load(sys.stdin)
    defs = schema.get("$defs") or schema.get("definitions") or {}
    prop = (schema.get("properties") or {}).get(a.table)
    if prop is None:
        return
    # the table's type: a $ref, possibly inside allOf / anyOf (an optional table)
    stack, keys = [prop], set()
    while stack:
        p = stack.pop()
        if "$ref" in p:
            stack.append(defs.get(p["$ref"].rsplit("/", 1)[-1], {}))
        for k in ("allOf", "anyOf", "oneOf"):
            stack += p.get(k, [])
        keys |= set((p.get("properties") or {}).keys())
    print("\n".join(sorted(keys)))


# ---- the tables -----------------------------------------------------------------------------


def mib(kb):
    return "–" if kb is None else f"{kb / 1024:,.1f}"


def size(b):
    if b is None:
        return "–"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(b) >= div:
            return f"{b / div:,.1f} {unit}"
    return f"{b:,} B"


def fmt(v):
    return "–" if v is None else f"{v:,}"


def probe_cell(p):
    if not p["total"]:
        return "not probed"
    cell = f"{p['answered']}/{p['total']} answered, worst {p['worst_ms']:,} ms"
    if p["first_failure"]:
        cell += f" (first miss: {p['first_failure']})"
    return cell


def after_cell(p):
    return f"answered, {p['ms']:,} ms" if p["answered"] else f"**no**: {p['what']}"


def reload_cell(r):
    """How the live reload during the flood ended, as a table cell."""
    rl = r.get("reload")
    if rl is None:
        return "not tried (RELOAD=0)"
    if rl["outcome"] == "not tried":
        return f"not tried: {rl['detail']}"
    when = "" if rl.get("during") else " (edited after the flood)"
    if rl["outcome"] == "applied":
        return f"applied, {rl['after_s']:g} s after the edit{when}"
    return f"**{rl['outcome']}**{when}: {rl['detail'][:160]}"


def during_cell(p):
    if not p["total"]:
        return "not probed"
    cell = f"{p['answered']}/{p['total']} (worst {p['worst_ms']:,} ms)"
    return cell if not p["first_failure"] else f"**{cell}**, first miss: {p['first_failure']}"


def summary(results):
    """One row per flood: the numbers the issue asks for, side by side."""
    print("\n| flood | RSS before → peak → after (MiB) | descriptors before → peak → after | ledger growth | `/healthz` during | approval page during | live reload during the flood |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        rss, fds, led = r["rss_kb"], r["fds"], r["ledger"]
        rows = r.get("rows") or [None, None]
        rows_grown = f", +{rows[1] - rows[0]:,} rows" if None not in rows else ""
        fd_cell = " → ".join("–" if v is None else str(v) for v in fds)
        emfile = (r.get("emfile") or {}).get("count")
        if emfile:
            fd_cell += f"; **EMFILE ×{emfile}** in the gate's log"
        print(
            f"| {r['flood']} | {mib(rss[0])} → {mib(rss[1])} → {mib(rss[2])} | {fd_cell} | +{size(led[2] - led[0])}{rows_grown} "
            f"| {during_cell(r['probes']['healthz'])} | {during_cell(r['probes']['page'])} | {reload_cell(r)} |"
        )


def cmd_table(a):
    results = []
    for path in a.results:
        with open(path) as f:
            results.append(json.load(f))
    summary(results)
    for r in results:
        print(f"\n#### {r['title']}\n")
        print(f"Flood ran {r['seconds']} s; {r['samples']} samples of the gate's /proc (VmRSS, fd/).\n")
        print("| measure | before | during the flood | after |")
        print("|---|---:|---:|---:|")
        rss, fds, led, out = r["rss_kb"], r["fds"], r["ledger"], r["outbox"]
        print(f"| RSS (MiB) | {mib(rss[0])} | peak {mib(rss[1])} | {mib(rss[2])} |")
        emfile = (r.get("emfile") or {}).get("count")
        during = f"peak {fds[1] if fds[1] is not None else '–'}" + (f"; **EMFILE ×{emfile}** in the log" if emfile else "")
        print(f"| descriptors in use | {fds[0]} | {during} | {fds[2] if fds[2] is not None else '–'} |")
        print(f"| ledger file | {size(led[0])} | peak {size(led[1])} | {size(led[2])} (+{size(led[2] - led[0])}) |")
        rows = r.get("rows") or [None, None]
        grown = f" (+{rows[1] - rows[0]:,})" if None not in rows else ""
        print(f"| ledger rows (`/healthz`) | {fmt(rows[0])} | – | {fmt(rows[1])}{grown} |")
        print(f"| outbox (`du -sb`) | {size(out[0])} | – | {size(out[2])} (+{size(out[2] - out[0])}) |")
        print(f"| `/healthz` | – | {probe_cell(r['probes']['healthz'])} | {after_cell(r['after_probes']['healthz'])} |")
        print(f"| approval page (GET of a real link) | – | {probe_cell(r['probes']['page'])} | {after_cell(r['after_probes']['page'])} |")
        s = r["serving_after"]
        served = f"yes: {s['detail']}, {s['ms']:,} ms" if s["ok"] else f"**no**: {s['detail']}"
        print(f"| another agent: a new session + `tools/call` echo | – | – | {served} |")
        print(f"| live reload (the policy file edited) | – | {reload_cell(r)} | – |")
        print()
        for n in r["notes"]:
            print(f"- {n}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("schema-keys")
    s.add_argument("table")
    s = sub.add_parser("call")
    for k in ("url", "token", "tool", "args"):
        s.add_argument(k)
    s = sub.add_parser("link")
    s.add_argument("outbox")
    s = sub.add_parser("run")
    s.add_argument("flood", choices=FLOODS)
    s.add_argument("--url", required=True, help="the gate's base URL (http://127.0.0.1:PORT)")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--token2", required=True, help="another agent's token (bystander sessions)")
    s.add_argument("--ledger", required=True)
    s.add_argument("--outbox", required=True)
    s.add_argument("--page", required=True, help="an approval link from the outbox")
    s.add_argument("--policy", required=True, help="the policy file the gate watches (edited once for a live reload)")
    s.add_argument("--log", required=True, help="the gate's log (how the reload ended)")
    s.add_argument("--title", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("table")
    s.add_argument("results", nargs="+")
    a = p.parse_args()
    {"schema-keys": cmd_schema_keys, "call": cmd_call, "link": cmd_link, "run": run, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    main()
