"""Options from flags and YAML, and the one-line errors for bad input (exit 3)."""

from __future__ import annotations

import pytest

from squall.cli import main
from squall.run.config import ConfigError, RunConfig, build, load_yaml


def test_flags_win_over_the_file(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("workload: set\ntime-limit: 2m\nnemesis: kill,pause\nseed: 5\n")
    cfg = build(str(f), {"seed": 9, "nodes": None})
    assert (cfg.workload, cfg.time_limit, cfg.nemesis, cfg.seed) == (
        "set",
        120.0,
        ["kill", "pause"],
        9,
    )


def test_resolving_fills_a_seed_and_a_name():
    cfg = RunConfig(nemesis=["kill"]).resolved()
    assert isinstance(cfg.seed, int) and cfg.name == "register-kill"


def test_an_unknown_option_names_the_known_ones(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("tme_limit: 10\n")
    with pytest.raises(ConfigError, match="unknown option 'tme_limit'; known: .*time_limit"):
        load_yaml(f)


def test_bad_yaml_names_the_line(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("workload: register\nnodes: [3\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(f)


def test_a_resolved_config_round_trips_through_test_yaml(tmp_path):
    from squall.run.config import dump_yaml

    cfg = RunConfig(workload="set", nemesis=["kill"], seed=3, bugs=["early-ack"]).resolved()
    f = tmp_path / "test.yaml"
    f.write_text(dump_yaml(cfg, {"command": "squall run ..."}))
    assert build(str(f), {}) == cfg


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["run", "--workload", "regster", "--backend", "local"], "workload 'regster' is unknown"),
        (["run", "--backend", "podman"], "backend 'podman' is unknown"),
        (["run", "--bug", "stale-reads", "--backend", "local"], "bug 'stale-reads' is unknown"),
        (["run", "--nodes", "many"], "nodes"),
        (["run", "--nemesis", "partiton", "--backend", "local"], "partiton"),
        (["run", "--time-limit", "-3", "--backend", "local"], "time_limit must be between"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_cli_input_is_one_line_and_exit_3(argv, needle, capsys):
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert needle in err
    # A leftover sweep may speak first on a machine where a run was killed: not ours to judge.
    said = [ln for ln in err.strip().splitlines() if "removed leftovers of a killed run" not in ln]
    assert "Traceback" not in err and len(said) <= 2, err  # rich folds at 80 columns


def test_a_bad_yaml_file_is_exit_3(tmp_path, capsys):
    f = tmp_path / "t.yaml"
    f.write_text("- just\n- a list\n")
    assert main(["run", "-f", str(f)]) == 3
    assert "expected a mapping" in capsys.readouterr().err
