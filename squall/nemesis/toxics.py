"""Toxics: what Squall's Toxiproxy server does to the bytes of one direction.

Only the standard library, so the server can run anywhere a python3 does.
The semantics follow Shopify Toxiproxy's documented toxics:

* ``latency`` (``latency``, ``jitter`` ms): each chunk is delivered
  ``latency ± jitter`` after it arrived; chunks never overtake each other.
* ``bandwidth`` (``rate`` KB/s): delivery is paced to the rate (0 holds data).
* ``timeout`` (``timeout`` ms): no data passes; after ``timeout`` the
  connection is closed, and with 0 it stays open and silent (a blackhole)
  until the toxic is removed, when the held data flows on — like a cable
  that was pulled and plugged back before TCP gave up.
* ``reset_peer`` (``timeout`` ms): after ``timeout`` the client side gets a
  TCP RST (SO_LINGER 0), the upstream side is closed.
* ``slicer`` (``average_size``, ``size_variation`` bytes, ``delay`` µs):
  chunks are cut into small pieces with a pause between them.
* ``limit_data`` (``bytes``): the connection is closed once that many bytes
  went through in this direction.

``toxicity`` is the probability that a toxic applies to a given connection;
it is rolled once per (connection, toxic) from the server's seeded RNG.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

STREAMS = ("upstream", "downstream")
DEFAULTS: dict[str, dict[str, float]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
}
KINDS = tuple(DEFAULTS)


class ToxicError(ValueError):
    """A toxic the server cannot apply; the message names the field and the fix."""


@dataclass(frozen=True)
class Toxic:
    name: str
    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }

    def attr(self, key: str) -> float:
        return float(self.attributes.get(key, DEFAULTS[self.type].get(key, 0)))

    def updated(self, body: dict[str, Any]) -> Toxic:
        """This toxic with the fields of an update request applied (type and name stay)."""
        attrs = dict(self.attributes)
        attrs.update(_numbers(body.get("attributes") or {}, self.type))
        merged = replace(self, attributes=attrs)
        if "toxicity" in body:
            merged = replace(merged, toxicity=_toxicity(body["toxicity"]))
        if "stream" in body:
            merged = replace(merged, stream=_stream(body["stream"]))
        return merged


def _stream(value: Any) -> str:
    if value not in STREAMS:
        raise ToxicError(f"stream {value!r} is not one of {', '.join(STREAMS)}")
    return str(value)


def _toxicity(value: Any) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ToxicError(f"toxicity must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= t <= 1.0:
        raise ToxicError(f"toxicity must be in [0, 1], got {t}")
    return t


def _numbers(attrs: Any, kind: str) -> dict[str, float]:
    if not isinstance(attrs, dict):
        raise ToxicError(f"attributes must be an object, got {type(attrs).__name__}")
    out: dict[str, float] = {}
    for key, value in attrs.items():
        if key not in DEFAULTS[kind]:
            raise ToxicError(
                f"{kind} toxic has no attribute {key!r}; it takes "
                f"{', '.join(DEFAULTS[kind]) or 'none'}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ToxicError(f"{kind}.{key} must be a number >= 0, got {value!r}")
        out[key] = value
    return out


def parse_toxic(body: Any) -> Toxic:
    """Builds a Toxic from a create request, with Toxiproxy's defaults."""
    if not isinstance(body, dict):
        raise ToxicError("a toxic must be a JSON object with at least a 'type'")
    kind = body.get("type")
    if kind not in DEFAULTS:
        raise ToxicError(f"toxic type {kind!r} is unknown; known: {', '.join(KINDS)}")
    stream = _stream(body.get("stream") or "downstream")
    name = body.get("name") or f"{kind}_{stream}"
    toxicity = _toxicity(body.get("toxicity", 1.0))
    attrs = dict(DEFAULTS[kind])
    attrs.update(_numbers(body.get("attributes") or {}, kind))
    return Toxic(name=str(name), type=str(kind), stream=stream, toxicity=toxicity, attributes=attrs)


def slices(data: bytes, average: int, variation: int, rand: Any) -> list[bytes]:
    """Cuts ``data`` into pieces of ``average ± variation`` bytes (at least 1)."""
    if average <= 0:
        return [data]
    out, at = [], 0
    while at < len(data):
        size = max(1, average + (rand.randint(-variation, variation) if variation else 0))
        out.append(data[at : at + size])
        at += size
    return out
