"""The node's configuration: the YAML file of docs/contracts.md §2 plus flag overrides."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import bugs as bugmodes


class ConfigError(ValueError):
    """The configuration is unusable; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Config:
    id: str
    data_dir: Path
    listen: str = "0.0.0.0:8000"
    # Raft RPCs on a port of their own (a docker backend publishes only client ports);
    # None serves them beside the client API on ``listen``.
    peer_listen: str | None = None
    peers: dict[str, str] = field(default_factory=dict)
    # The cluster secret every peer RPC and admin call is signed with (peerauth.py):
    # a file, so it never shows in an argv or a log. Needed once the node has peers.
    secret_file: Path | None = None
    # 300-600 ms: a leader death is noticed within 0.6 s and an election takes
    # one round trip, so failover stays under the 1 s p50 target; 6+ heartbeats
    # fit into the shortest timeout, so one lost heartbeat never starts an election.
    election_timeout_ms: tuple[int, int] = (300, 600)
    heartbeat_ms: int = 50
    snapshot_every: int = 1000
    snapshot_codec: str = "dump"
    # hot: followers apply as they replicate; cold: they keep log and snapshots only, and
    # a new leader rebuilds its state before serving (standby.py, Aurora's failover)
    standby: str = "hot"
    digest_every: int = 100
    max_value_bytes: int = 65536
    request_timeout_ms: int = 5000
    # Connections (limits.py): closed when idle with no request this long, or when a
    # request head takes longer than header_timeout_ms; a body must arrive in body_timeout_ms.
    idle_timeout_ms: int = 60000
    header_timeout_ms: int = 10000
    body_timeout_ms: int = 30000
    max_snapshot_bytes: int = 1 << 30
    bugs: frozenset[str] = frozenset()

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.listen)

    @property
    def peer_host_port(self) -> tuple[str, int] | None:
        return split_address(self.peer_listen) if self.peer_listen else None

    def peer_ids(self) -> list[str]:
        return sorted(p for p in self.peers if p != self.id)


def split_address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host or "0.0.0.0", int(port)


_KEYS = {f for f in Config.__dataclass_fields__}


def from_dict(raw: dict[str, Any], env_bugs: str | None = None) -> Config:
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    for key in ("id", "data_dir"):
        if not raw.get(key):
            raise ConfigError(f"config needs '{key}'")
    values = dict(raw)
    values["data_dir"] = Path(raw["data_dir"])
    if raw.get("secret_file"):
        values["secret_file"] = Path(raw["secret_file"])
    for key in ("listen", "peer_listen"):
        if raw.get(key) is not None and not _is_address(raw[key]):
            raise ConfigError(f"{key} must be HOST:PORT with a port of 1..65535, got {raw[key]!r}")
    values["peers"] = {str(k): str(v).rstrip("/") for k, v in (raw.get("peers") or {}).items()}
    if values["peers"] and str(raw["id"]) not in values["peers"]:
        raise ConfigError(
            f"peers must list this node ({raw['id']}) too; got {', '.join(values['peers'])}"
        )
    lo_hi = raw.get("election_timeout_ms", (300, 600))
    whole = isinstance(lo_hi, list | tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in lo_hi
    )
    if not (whole and len(lo_hi) == 2 and 0 < lo_hi[0] <= lo_hi[1]):
        raise ConfigError(
            f"election_timeout_ms must be [low, high] with 0 < low <= high, got {lo_hi!r}"
        )
    values["election_timeout_ms"] = (int(lo_hi[0]), int(lo_hi[1]))
    if values.get("snapshot_codec", "dump") not in ("dump", "rows"):
        raise ConfigError(f"snapshot_codec must be dump or rows, got {values['snapshot_codec']!r}")
    if values.get("standby", "hot") not in ("hot", "cold"):
        raise ConfigError(f"standby must be hot or cold, got {values['standby']!r}")
    for key in (
        "heartbeat_ms",
        "snapshot_every",
        "digest_every",
        "max_value_bytes",
        "request_timeout_ms",
        "idle_timeout_ms",
        "header_timeout_ms",
        "body_timeout_ms",
        "max_snapshot_bytes",
    ):
        v = values.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"{key} must be a non-negative integer, got {v!r}")
    try:
        values["bugs"] = bugmodes.resolve(raw.get("bugs") or [], env_bugs)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    cfg = Config(**values)
    if cfg.peer_ids() and cfg.secret_file is None:
        raise ConfigError(
            "a node with peers needs secret_file (the cluster secret its peer RPCs are signed with)"
        )
    for key in ("idle_timeout_ms", "header_timeout_ms", "body_timeout_ms"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key} must be positive milliseconds, got {getattr(cfg, key)}")
    if cfg.heartbeat_ms <= 0 or cfg.heartbeat_ms * 2 > cfg.election_timeout_ms[0]:
        raise ConfigError(
            "heartbeat_ms must be positive and at most half the lowest election timeout"
        )
    return cfg


def _is_address(value: Any) -> bool:
    try:
        return isinstance(value, str) and 0 < split_address(value)[1] < 65536
    except ValueError:
        return False


def load(
    path: Path | None, overrides: dict[str, Any] | None = None, env_bugs: str | None = None
) -> Config:
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config {path} must be a YAML mapping")
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(raw, env_bugs)


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m squall.systems.aurora.store.node", description="A Squall store node."
    )
    p.add_argument("--config", type=Path, help="node YAML (docs/contracts.md section 2)")
    p.add_argument("--id")
    p.add_argument("--data-dir")
    p.add_argument("--listen")
    a = p.parse_args(argv)
    return load(a.config, {"id": a.id, "data_dir": a.data_dir, "listen": a.listen})
