"""A run's configuration: from flags, from a YAML test file, or both.

Every option of ``squall run`` can be written in a YAML file (``squall run -f
test.yaml``); flags given on the command line win over the file. The resolved
configuration — seed included — is written to the run directory as
``test.yaml``, and feeding that file back (``squall run -f …/test.yaml``)
repeats the run.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BACKENDS = ("docker", "local")
WORKLOADS = ("register", "set", "scheduler")
BUGS = ("stale-read", "early-ack", "lossy-snapshot", "no-fsync")
CODECS = ("dump", "rows")


class ConfigError(ValueError):
    """Bad input from the user: the message names the problem and the fix."""


@dataclass
class RunConfig:
    workload: str = "register"
    nemesis: list[str] = field(default_factory=list)   # fault names; [] = none
    nemesis_file: str | None = None                     # a YAML timeline instead of names
    nemesis_interval: float = 10.0
    nodes: int = 5
    time_limit: float = 60.0
    concurrency: int = 10
    rate: float = 200.0                                  # ops/s over all workers; 0 = unthrottled
    seed: int | None = None
    backend: str = "docker"
    store: str = "store"
    name: str | None = None
    bugs: list[str] = field(default_factory=list)
    bug_nodes: list[str] = field(default_factory=list)
    snapshot_every: int = 500
    snapshot_codec: str = "dump"
    failover_bound: float = 2.0
    starvation_bound: float = 1.0
    check_time_limit: float = 60.0
    replay: str | None = None
    workload_options: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> RunConfig:
        """Fills in what the user left open (the seed, the name) and validates."""
        cfg = dataclasses.replace(self)
        if cfg.seed is None:
            cfg.seed = secrets.randbelow(2**31)
        if not cfg.name:
            faults = "+".join(cfg.nemesis) if cfg.nemesis else (
                Path(cfg.nemesis_file).stem if cfg.nemesis_file else "none")
            bugs = ("-" + "+".join(cfg.bugs)) if cfg.bugs else ""
            cfg.name = f"{cfg.workload}-{faults}{bugs}"
        cfg.validate()
        return cfg

    def validate(self) -> None:
        _one_of("workload", self.workload, WORKLOADS)
        _one_of("backend", self.backend, BACKENDS)
        _one_of("snapshot_codec", self.snapshot_codec, CODECS)
        for bug in self.bugs:
            _one_of("bug", bug, BUGS)
        if not 1 <= self.nodes <= 9:
            raise ConfigError(f"nodes must be between 1 and 9, got {self.nodes}")
        if self.time_limit <= 0:
            raise ConfigError(f"time_limit must be positive seconds, got {self.time_limit}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.rate < 0:
            raise ConfigError(f"rate must be >= 0 ops/s (0 = unthrottled), got {self.rate}")
        if self.nemesis_file and not Path(self.nemesis_file).is_file():
            raise ConfigError(f"nemesis schedule file {self.nemesis_file} does not exist")
        if self.replay and not (Path(self.replay) / "test.yaml").is_file():
            raise ConfigError(f"--replay {self.replay}: no test.yaml there; give a run directory")
        for node in self.bug_nodes:
            if node not in {f"n{i}" for i in range(1, self.nodes + 1)}:
                raise ConfigError(f"bug_nodes names {node!r}, which is not one of n1..n{self.nodes}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _one_of(what: str, value: str, known: tuple[str, ...]) -> None:
    if value not in known:
        raise ConfigError(f"{what} {value!r} is unknown; known: {', '.join(known)}")


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
_ALIASES = {"time-limit": "time_limit", "snapshot-every": "snapshot_every",
            "snapshot-codec": "snapshot_codec", "failover-bound": "failover_bound",
            "bug": "bugs", "bug-nodes": "bug_nodes", "nemesis-interval": "nemesis_interval",
            "starvation-bound": "starvation_bound", "workload-options": "workload_options",
            "check-time-limit": "check_time_limit", "nemesis-file": "nemesis_file"}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a test file into a dict of known options, or raises ConfigError saying why."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"test file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of options (key: value), got {type(data).__name__}")
    return normalize(data, str(p))


# Written into a run's test.yaml for people and replays; ignored when read back.
METADATA = ("command", "versions", "started", "run_dir", "squall")


def normalize(data: dict[str, Any], source: str = "options") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in METADATA:
            continue
        name = _ALIASES.get(str(key), str(key).replace("-", "_"))
        if name not in _FIELDS:
            raise ConfigError(
                f"{source}: unknown option {key!r}; known: {', '.join(sorted(_FIELDS))}"
            )
        out[name] = _coerce(name, value, source)
    return out


def _coerce(name: str, value: Any, source: str) -> Any:
    default = _FIELDS[name].default
    kind = type(default) if default is not dataclasses.MISSING and default is not None else None
    try:
        if name in ("nemesis", "bugs", "bug_nodes"):
            if value is None or value == "none":
                return []
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
            return [str(v) for v in value]
        if name == "seed":
            return None if value is None else int(value)
        if name == "workload_options":
            if not isinstance(value, dict):
                raise TypeError("a mapping")
            return value
        if kind in (int, float) and not isinstance(value, bool):
            return kind(_seconds(value) if isinstance(value, str) else value)
        if kind is str or default is None:
            return None if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: option {name} has a bad value {value!r}") from None
    return value


def _seconds(text: str) -> float:
    """'90', '90s', '2m', '1.5s' → seconds."""
    t = text.strip().lower()
    if t.endswith("ms"):
        return float(t[:-2]) / 1000
    if t.endswith("s"):
        return float(t[:-1])
    if t.endswith("m"):
        return float(t[:-1]) * 60
    return float(t)


def build(file: str | None, overrides: dict[str, Any]) -> RunConfig:
    """File options, then flag overrides (only those the user actually gave)."""
    data: dict[str, Any] = load_yaml(file) if file else {}
    data.update(normalize({k: v for k, v in overrides.items() if v is not None}, "flags"))
    return RunConfig(**data)


def dump_yaml(cfg: RunConfig, extra: dict[str, Any] | None = None) -> str:
    data = cfg.to_dict()
    if extra:
        data.update(extra)
    return yaml.safe_dump(data, sort_keys=False)
