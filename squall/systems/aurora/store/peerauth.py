"""Who may speak to a node as a peer or an admin: every such request is signed with the cluster secret.

The secret is one per cluster (the runner draws it per run), read from a file
in the node's config directory so it never appears in an argv, a log or the
report. A request is signed with HMAC-SHA256 over the sender, the addressee,
the route, its query and the body: a forged or altered RPC, one signed for
another node, or one sent as a peer that is not in the configuration is
refused before Raft sees it.

No nonce or timestamp: an RPC replayed verbatim by someone who captured it is
a duplicated, delayed message, which Raft already tolerates by design (terms,
log matching and idempotent appends), and the peer port is not published to
the host. What a signature rules out is an RPC nobody in the cluster sent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path

SENDER = "X-Squall-From"
SIGNATURE = "X-Squall-Signature"
ADMIN = "admin"  # the sender name of admin calls (the suite, holding the secret)
ANY_NODE = ""  # an admin call's addressee: it may be sent to any node


class Refused(Exception):
    """A request that is not from whom it claims; the message says what was wrong."""


def read_secret(path: Path) -> bytes:
    """The secret in ``path`` (surrounding white space stripped); ValueError naming the fix."""
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        raise ValueError(f"cannot read the cluster secret {path}: {e.strerror}") from None
    if len(secret) < 16:
        raise ValueError(
            f"the cluster secret in {path} is shorter than 16 bytes; write a longer one"
        )
    return secret


def signature(
    secret: bytes, sender: str, addressee: str, route: str, query: Mapping[str, str], body: bytes
) -> str:
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    params = "&".join(f"{k}={v}" for k, v in sorted(query.items()) if k != "to")
    for part in (sender, addressee, route, params):
        mac.update(part.encode())
        mac.update(b"\0")
    mac.update(body)
    return mac.hexdigest()


def headers(
    secret: bytes, sender: str, addressee: str, route: str, query: Mapping[str, str], body: bytes
) -> dict[str, str]:
    """The headers that sign one request."""
    return {SENDER: sender, SIGNATURE: signature(secret, sender, addressee, route, query, body)}


def verify(
    secret: bytes | None,
    got: Mapping[str, str],
    allowed: set[str],
    addressee: str,
    route: str,
    query: Mapping[str, str],
    body: bytes,
) -> str:
    """The verified sender of a request, or Refused saying why it is not trusted."""
    if secret is None:
        raise Refused("this node has no cluster secret (secret_file), so it takes no signed calls")
    sender = got.get(SENDER, "")
    if sender not in allowed:
        raise Refused(f"sender {sender or '(none)'!r} is not one of {', '.join(sorted(allowed))}")
    want = signature(secret, sender, addressee, route, query, body)
    if not hmac.compare_digest(want, got.get(SIGNATURE, "")):
        raise Refused(f"the signature of this request from {sender} does not match its content")
    return sender
