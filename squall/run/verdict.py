"""What a run's verdict must say beside its checkers: why a run that checked what it
recorded may still not have tested what it asked for.

The checkers judge the history; they cannot know that the run was cut short,
that it asked for faults and injected none, or that lines of its history were
skipped. Each such condition makes the verdict ``unknown`` (never valid) with
its reason, as one more entry, ``run``, beside the checkers': results.json,
results.xml and report.html read the same entry, so the three always agree.
A checker that found a violation still makes the run invalid: what was found
in the part that ran is certain.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from squall.checkers.base import UNKNOWN, merge_valid
from squall.history import INVOKE, HistoryRead, Op

RUN = "run"  # the results entry for the run's own conditions
# The options of test.yaml that checkers are built with (a damaged one is a clean error).
CHECKER_OPTIONS = ("check_time_limit", "failover_bound", "starvation_bound")


def read_test_yaml(run_dir: Path) -> dict[str, Any]:
    """A run directory's test.yaml as a mapping, or ConfigError saying what is wrong."""
    # Imported here: ``squall check FILE`` uses this module without a test.yaml,
    # and YAML and the config module are a good part of its start-up time.
    import yaml

    from squall.run.config import ConfigError

    path = run_dir / "test.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path} is damaged ({type(exc).__name__}); restore it or re-run"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of options, not a {type(raw).__name__}")
    return raw


def faults_asked(test: Mapping[str, Any]) -> bool:
    nemesis = test.get("nemesis")
    names = [nemesis] if isinstance(nemesis, str) else nemesis
    names = names if isinstance(names, list) else []  # a damaged value asks for nothing
    return bool([n for n in names if n != "none"] or test.get("nemesis_file"))


def injected(history: list[Op]) -> int:
    """Faults that took effect: start completions that are ok, or name the nodes they touched."""
    count = 0
    for op in history:
        if not op.is_nemesis or op.type == INVOKE or not op.f.startswith("start-"):
            continue
        targets = op.value.get("targets") if isinstance(op.value, dict) else None
        if op.type == "ok" and (targets is None or targets):
            count += 1
    return count


def conditions(test: Mapping[str, Any], read: HistoryRead, interrupted: bool) -> list[str]:
    """Every reason the run did not test what it asked for (empty: none)."""
    out = []
    if interrupted:
        out.append(
            "the run was interrupted (Ctrl-C or SIGTERM) before its time limit: "
            "its checks cover only the part that ran"
        )
    if faults_asked(test) and read.ops and injected(read.ops) == 0:
        out.append(
            "the run asked for faults but injected none, so it tested the system without "
            "them; see the nemesis ops in history.jsonl"
        )
    if read.skipped:
        out.append(
            f"{len(read.skipped)} damaged lines of history.jsonl were skipped "
            "(--skip-damaged): the ops they held were not checked"
        )
    return out


def note_conditions(results: dict[str, Any], reasons: list[str], read: HistoryRead) -> None:
    """Adds the ``run`` entry (when there is a reason) and the history's damage to results."""
    if read.damage:
        results["history_damage"] = {
            "notes": read.notes(),
            "stretches": [d.to_json() for d in read.damage],
        }
    if reasons:
        results[RUN] = {"valid": UNKNOWN, "why": "; ".join(reasons), "reasons": reasons}
        results["valid"] = merge_valid([results.get("valid", UNKNOWN), UNKNOWN])
