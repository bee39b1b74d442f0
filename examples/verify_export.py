#!/usr/bin/env python3
"""Verify an `airlock ledger export` (JSONL) with nothing but Python's standard library.

    airlock ledger export > ledger.jsonl
    python3 examples/verify_export.py ledger.jsonl --public-key <hex from `airlock keys public`>

For every row it recomputes the hash from the row's own fields, exactly as Airlock does:

    entry = canonical JSON of {seq, time, kind, call_id, body}   (sorted keys, no spaces)
    leaf  = SHA-256("airlock.ledger.v1.leaf\\0" || entry)
    hash  = SHA-256("airlock.ledger.v1.link\\0" || prev || leaf)  (prev, hash: 32 raw bytes)

checks that each row's `prev` is the previous row's `hash` (row 1: 32 zero bytes; a filtered
export only has its rows checked one by one), and, given the public key, checks every
`signature` row: an Ed25519 signature (RFC 8032, implemented below) over
"airlock.ledger.v1.sig\\0" || head_seq (8 bytes, big-endian) || head (32 bytes), where head is the
hash of the row just before it. Exit status 0: every check passed; 1: the first failure is named.

It is deliberately independent of Airlock's code. One caveat: a body holding a floating-point
number that Python prints differently from Rust (e.g. 1e21 vs 1e+21) cannot be re-encoded here.
"""

import hashlib
import json
import sys

LEAF = b"airlock.ledger.v1.leaf\x00"
LINK = b"airlock.ledger.v1.link\x00"
SIG = b"airlock.ledger.v1.sig\x00"

# --- Ed25519 verification, after the reference code in RFC 8032, section 6 ---------------------
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 % P == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


_GY = 4 * pow(5, P - 2, P) % P
_GX = _recover_x(_GY, 0)
BASE = (_GX, _GY, 1, _GX * _GY % P)


def _add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f, g * h, f * g, e * h)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(p, q):
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def _decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def ed25519_verify(public, message, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return _equal(_mul(s, BASE), _add(r, _mul(h, a)))


# --- the ledger ----------------------------------------------------------------------------------
def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev, row):
    entry = canonical({k: row[k] for k in ("seq", "time", "kind", "call_id", "body")}).encode()
    leaf = hashlib.sha256(LEAF + entry).digest()
    return hashlib.sha256(LINK + prev + leaf).digest()


def main(argv):
    args = argv[1:]
    public = None
    if "--public-key" in args:
        i = args.index("--public-key")
        public = bytes.fromhex(args[i + 1].strip())
        del args[i : i + 2]
    if len(args) != 1:
        print(__doc__)
        return 2
    rows = signatures = 0
    last_seq, last_hash = 0, bytes(32)
    with open(args[0], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            row = json.loads(line)
            seq, prev, stated = row["seq"], bytes.fromhex(row["prev"]), bytes.fromhex(row["hash"])
            if row_hash(prev, row) != stated:
                print(f"FAILED at seq {seq}: the row does not hash to its hash (altered)")
                return 1
            if seq == last_seq + 1 and prev != last_hash:
                print(f"FAILED at seq {seq}: prev is not row {last_seq}'s hash (broken link)")
                return 1
            if seq <= last_seq:
                print(f"FAILED at seq {seq}: out of order after {last_seq}")
                return 1
            if row["kind"] == "signature":
                body = row["body"]
                if body["head_seq"] != seq - 1 or bytes.fromhex(body["head"]) != prev:
                    print(f"FAILED at seq {seq}: the signature does not sign the row before it")
                    return 1
                if public is not None:
                    message = SIG + body["head_seq"].to_bytes(8, "big") + prev
                    if not ed25519_verify(public, message, bytes.fromhex(body["signature"])):
                        print(f"FAILED at seq {seq}: the signature does not verify with the key given")
                        return 1
                    signatures += 1
            rows += 1
            last_seq, last_hash = seq, stated
    checked = f"{signatures} signature(s) verified" if public else "signatures not checked (no --public-key)"
    print(f"OK: {rows} rows, last seq {last_seq}, head {last_hash.hex()}; {checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
