"""A test: what to run, as a value (``Test``), from Python, from flags, from YAML, or all.

A user builds a ``Test`` in Python and passes it to ``squall.run.run``; the
CLI builds the same value from flags and a YAML test file (``squall run -f
test.yaml``; flags win over the file). ``system`` and ``workload`` are names
(from the registries, ``squall.registry``) or objects; the resolved test —
seed included — is written to the run directory as ``test.yaml``, and
feeding that file back (``squall run -f …/test.yaml``) repeats the run.

A system's own options live in ``system_options`` and are checked by the
system itself. A key that is no option of a test but one of the system's
(``System.options``) may also be written at the top level: test files from
before systems existed keep working, and a suite reads naturally.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from squall.checkers.base import Checker
from squall.protocols import System
from squall.workloads.base import Workload

BACKENDS = ("docker", "local", "ssh")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,99}$")
DAY = 86400.0
# (field, lowest, highest, must be whole): what a run can be asked to do at all.
RANGES: tuple[tuple[str, float, float, bool], ...] = (
    ("nodes", 1, 9, True),
    ("concurrency", 1, 1000, True),
    ("time_limit", 0.001, 7 * DAY, False),
    ("rate", 0, 1e6, False),
    ("nemesis_interval", 0.001, DAY, False),
    ("failover_bound", 0.001, DAY, False),
    ("starvation_bound", 0.001, DAY, False),
    ("check_time_limit", 0.001, DAY, False),
)
DURATIONS = frozenset(
    ("time_limit", "nemesis_interval", "failover_bound", "starvation_bound", "check_time_limit")
)


class ConfigError(ValueError):
    """Bad input from the user: the message names the problem and the fix."""


@dataclass(kw_only=True)
class Test:
    system: str | System = "aurora"  # a name, "module:attr", or a System
    workload: str | Workload = "register"  # a name or a Workload
    nemesis: list[str] = field(default_factory=list)  # fault names; [] = none
    nemesis_file: str | None = None  # a YAML timeline instead of names
    nemesis_interval: float = 10.0
    nodes: int = 5
    time_limit: float = 60.0
    concurrency: int = 10
    rate: float = 200.0  # ops/s over all workers; 0 = unthrottled
    seed: int | None = None
    backend: str = "docker"
    inventory: str | None = None  # the hosts of --backend ssh (squall.cluster.inventory)
    store: str = "store"
    name: str | None = None
    bugs: list[str] = field(default_factory=list)
    bug_nodes: list[str] = field(default_factory=list)
    system_options: dict[str, Any] = field(default_factory=dict)
    failover_bound: float = 2.0
    starvation_bound: float = 1.0
    check_time_limit: float = 60.0
    replay: str | None = None
    workload_options: dict[str, Any] = field(default_factory=dict)
    # Checkers beside the workload's and the system's (Python only: not written to test.yaml).
    checkers: dict[str, Checker] = field(default_factory=dict)

    def resolved(self) -> Test:
        """Fills in what the user left open (the seed, the name) and validates."""
        cfg = dataclasses.replace(self)
        if cfg.seed is None:
            cfg.seed = secrets.randbelow(2**31)
        if not cfg.name:
            faults = (
                "+".join(cfg.nemesis)
                if cfg.nemesis
                else (Path(cfg.nemesis_file).stem if cfg.nemesis_file else "none")
            )
            bugs = ("-" + "+".join(cfg.bugs)) if cfg.bugs else ""
            system = "" if system_name(cfg.system) == "aurora" else f"{system_name(cfg.system)}-"
            name = f"{system}{workload_name(cfg.workload)}-{faults}{bugs}"
            cfg.name = re.sub(r"[^A-Za-z0-9._+-]", "_", name)[:100]  # "mod:Class" names a system
        cfg.validate()
        return cfg

    def system_object(self) -> System:
        """The System this test runs (built from the registry when given by name)."""
        from squall import registry

        if not isinstance(self.system, str):
            return self.system
        try:
            return registry.system(self.system)
        except registry.UnknownName as exc:
            raise ConfigError(str(exc)) from None

    def validate(self) -> None:
        system = self.system_object()
        _one_of("backend", self.backend, BACKENDS)
        self._check_inventory()
        from squall.workloads import workload_names

        if isinstance(self.workload, str):
            _one_of("workload", self.workload, tuple(workload_names(system)))
        for bug in self.bugs:
            _one_of("bug", bug, tuple(system.bugs), f" (the bug modes of system {system.name})")
        checker = getattr(system, "validate_options", None)
        if checker is not None:
            try:
                self.system_options = checker(self.system_options)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        self._validate_values()
        if self.nemesis_file and not Path(self.nemesis_file).is_file():
            raise ConfigError(f"nemesis schedule file {self.nemesis_file} does not exist")
        if self.replay and not (Path(self.replay) / "test.yaml").is_file():
            raise ConfigError(f"--replay {self.replay}: no test.yaml there; give a run directory")
        for node in self.bug_nodes:
            if node not in {f"n{i}" for i in range(1, self.nodes + 1)}:
                raise ConfigError(
                    f"bug_nodes names {node!r}, which is not one of n1..n{self.nodes}"
                )

    def _check_inventory(self) -> None:
        if self.backend != "ssh":
            if self.inventory:
                raise ConfigError("--inventory is for --backend ssh; drop it or add --backend ssh")
            return
        if not self.inventory:
            raise ConfigError("--backend ssh needs --inventory hosts.yaml (README: 'Real hosts')")
        from squall.cluster.inventory import InventoryError, load_inventory

        try:
            hosts = len(load_inventory(self.inventory).hosts)
        except InventoryError as exc:
            raise ConfigError(str(exc)) from None
        if hosts != self.nodes:
            raise ConfigError(
                f"inventory {self.inventory} lists {hosts} hosts but the test wants "
                f"{self.nodes} nodes; pass --nodes {hosts}"
            )

    def _validate_values(self) -> None:
        """Types and ranges of every plain value (a YAML file or Python may hand in anything)."""
        for name, low, high, whole in RANGES:
            _in_range(name, getattr(self, name), low, high, whole)
        if self.seed is not None:
            _in_range("seed", self.seed, 0, 2**63 - 1, True)
        for name in ("nemesis", "bugs", "bug_nodes"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name} must be a list of names, got {value!r}")
        for name in ("system_options", "workload_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a mapping, got {getattr(self, name)!r}")
        if self.name is not None and not SAFE_NAME.match(str(self.name)):
            raise ConfigError(
                f"name {self.name!r} must be one directory name under the store: letters, "
                "digits, '.', '_', '+', '-', not starting with '.' (at most 100)"
            )
        _writable_dir("store", self.store)

    def to_dict(self) -> dict[str, Any]:
        """The serializable form (test.yaml): objects by their registered names."""
        out = {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name not in ("checkers", "system", "workload")
        }
        return {"system": system_name(self.system), "workload": workload_name(self.workload), **out}


RunConfig = Test  # the name this value had before it could hold a system


def system_name(system: str | System) -> str:
    """How test.yaml names a system: its registered name, else ``module:Class``."""
    if isinstance(system, str):
        return system
    from squall import registry

    name = getattr(system, "name", "")
    if name in registry.names("system"):
        return str(name)
    return f"{type(system).__module__}:{type(system).__qualname__}"


def workload_name(workload: str | Workload) -> str:
    return workload if isinstance(workload, str) else str(getattr(workload, "name", "?"))


def _in_range(name: str, value: Any, low: float, high: float, whole: bool) -> None:
    kind = "a whole number" if whole else "a number"
    ok = isinstance(value, int) or (not whole and isinstance(value, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


def _writable_dir(what: str, path: str) -> None:
    """Refuses a directory that could not be created or written (before anything starts)."""
    p = Path(path).absolute()
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{what} {path!r} cannot be created or written ({probe} is not a writable "
            "directory); give another --store"
        )
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what} {path!r} is not a directory; give another --store")


def _one_of(what: str, value: str, known: tuple[str, ...], where: str = "") -> None:
    if value not in known:
        raise ConfigError(f"{what} {value!r} is unknown{where}; known: {', '.join(known)}")


_FIELDS = {f.name: f for f in dataclasses.fields(Test) if f.name != "checkers"}
_ALIASES = {
    "time-limit": "time_limit",
    "failover-bound": "failover_bound",
    "system-options": "system_options",
    "bug": "bugs",
    "bug-nodes": "bug_nodes",
    "nemesis-interval": "nemesis_interval",
    "starvation-bound": "starvation_bound",
    "workload-options": "workload_options",
    "check-time-limit": "check_time_limit",
    "nemesis-file": "nemesis_file",
}


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
        raise ConfigError(
            f"{p}: expected a mapping of options (key: value), got {type(data).__name__}"
        )
    return normalize(data, str(p))


# Written into a run's test.yaml for people and replays; ignored when read back.
METADATA = ("command", "versions", "started", "run_dir", "squall")


def normalize(data: dict[str, Any], source: str = "options") -> dict[str, Any]:
    out: dict[str, Any] = {}
    theirs: dict[str, Any] = {}  # keys that may be the system's own options
    for key, value in data.items():
        if key in METADATA:
            continue
        name = _ALIASES.get(str(key), str(key).replace("-", "_"))
        if name not in _FIELDS:
            theirs[name] = value
            continue
        out[name] = _coerce(name, value, source)
    if theirs:
        system = Test(system=out.get("system", "aurora")).system_object()
        unknown = sorted(set(theirs) - set(getattr(system, "options", {})))
        if unknown:
            known = sorted(set(_FIELDS) | set(getattr(system, "options", {})))
            raise ConfigError(
                f"{source}: unknown option {unknown[0]!r}; known: {', '.join(known)} "
                f"(the last ones are system {system.name}'s own)"
            )
        out["system_options"] = {
            **{k: v for k, v in theirs.items() if v is not None},
            **out.get("system_options", {}),
        }
    return out


def coerce(name: str, value: Any, source: str) -> Any:
    """One option's value as its field's type, or ConfigError naming it and the value."""
    return _coerce(name, value, source)


def _coerce(name: str, value: Any, source: str) -> Any:
    default = _FIELDS[name].default
    kind = type(default) if default is not dataclasses.MISSING and default is not None else None
    try:
        if name in ("nemesis", "bugs", "bug_nodes"):
            if value is None or value == "none":
                return []
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
            if not isinstance(value, list) or not all(_scalar(v) for v in value):
                raise TypeError("a list of names")
            return [str(v) for v in value]
        if name == "seed":
            return None if value is None else _whole(value)
        if name in ("workload_options", "system_options"):
            if not isinstance(value, dict):
                raise TypeError("a mapping")
            return value
        if name in ("system", "workload"):
            if not _scalar(value):
                raise TypeError("a name")
            return str(value)
        if name in DURATIONS:
            return _finite(_seconds(value) if isinstance(value, str) else value)
        if kind is int:
            return _whole(value)
        if kind is float:
            return _finite(float(value) if isinstance(value, str) else value)
        if kind is str or default is None:
            if value is not None and not _scalar(value):
                raise TypeError("a string")
            return None if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: option {name} has a bad value {value!r}") from None
    return value


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _whole(value: Any) -> int:
    """An integer given as one (or as its digits): never a bool, a fraction or '2m'."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a whole number")
    return value


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("a finite number")
    return float(value)


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


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["a=100", "b=rows"]`` -> ``{"a": 100, "b": "rows"}``: each value is read as YAML."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--system-option {pair!r}: write KEY=VALUE, e.g. -o name=100")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--system-option {pair!r}: {value!r} is not a YAML value") from None
    return out


def build(file: str | None, overrides: dict[str, Any]) -> Test:
    """File options, then flag overrides (only those the user actually gave)."""
    data: dict[str, Any] = load_yaml(file) if file else {}
    flags = normalize({k: v for k, v in overrides.items() if v is not None}, "flags")
    if "system_options" in flags:  # a flag sets one option; the file's others stay
        flags["system_options"] = {**data.get("system_options", {}), **flags["system_options"]}
    data.update(flags)
    return Test(**data)


def dump_yaml(cfg: Test, extra: dict[str, Any] | None = None) -> str:
    data = cfg.to_dict()
    if extra:
        data.update(extra)
    return yaml.safe_dump(data, sort_keys=False)
