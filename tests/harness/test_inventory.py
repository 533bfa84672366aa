"""The inventory of real hosts: a wrong one is refused in one line naming the fix, and the
rules a partition writes on a host go into the run's own chains, never the host's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from squall.cluster import net
from squall.cluster.inventory import InventoryError, load_inventory
from squall.run.config import ConfigError
from squall.run.config import Test as SquallTest


def _write(tmp: Path, data: dict) -> Path:
    (tmp / "id").write_text("not a real key")
    path = tmp / "hosts.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _hosts(n: int) -> list[dict]:
    return [{"node": f"n{i}", "host": f"10.9.0.{i}"} for i in range(1, n + 1)]


def test_a_good_inventory_gives_every_host_its_defaults(tmp_path: Path) -> None:
    inv = load_inventory(_write(tmp_path, {"user": "u", "key": "id", "hosts": _hosts(3)}))
    assert inv.nodes == ["n1", "n2", "n3"]
    h = inv.host("n2")
    assert (h.user, h.port, h.sudo, h.address) == ("u", 22, True, "10.9.0.2")
    assert h.key == str(tmp_path / "id")


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"user": "u", "key": "id", "hosts": []}, "at least one host"),
        ({"user": "u", "key": "id", "hosts": _hosts(2), "sudoo": True}, "unknown key 'sudoo'"),
        ({"key": "id", "hosts": _hosts(2)}, "no user"),
        ({"user": "u", "hosts": _hosts(2)}, "neither key: nor agent: true"),
        ({"user": "u", "key": "missing", "hosts": _hosts(2)}, "key file"),
        (
            {"user": "u", "key": "id", "hosts": [{"node": "db1", "host": "a"}]},
            "node ids must be n1..n1",
        ),
        (
            {"user": "u", "key": "id", "hosts": [{"node": "n1", "host": "a"}] * 2},
            "each once",
        ),
        (
            {
                "user": "u",
                "key": "id",
                "hosts": [{"node": "n1", "host": "a"}, {"node": "n2", "host": "a"}],
            },
            "listed twice",
        ),
    ],
)
def test_a_wrong_inventory_is_refused_saying_what_to_fix(
    tmp_path: Path, data: dict, said: str
) -> None:
    with pytest.raises(InventoryError, match=said) as caught:
        load_inventory(_write(tmp_path, data))
    assert "\n" not in str(caught.value)


def test_the_ssh_backend_without_an_inventory_is_refused() -> None:
    with pytest.raises(ConfigError, match="--inventory"):
        SquallTest(backend="ssh").resolved()


def test_an_inventory_for_another_backend_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, {"user": "u", "key": "id", "hosts": _hosts(5)})
    with pytest.raises(ConfigError, match="for --backend ssh"):
        SquallTest(backend="local", inventory=str(path)).resolved()


def test_an_inventory_of_another_size_than_the_test_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, {"user": "u", "key": "id", "hosts": _hosts(3)})
    with pytest.raises(ConfigError, match="pass --nodes 3"):
        SquallTest(backend="ssh", inventory=str(path), nodes=5).resolved()


CHAINS = {"INPUT": "squall-x-in", "OUTPUT": "squall-x-out"}


def test_host_partition_rules_go_into_the_runs_own_chains() -> None:
    grudge = {"n1": {"n2", "client"}}
    ips = {"n1": "10.0.0.1", "n2": "10.0.0.2"}
    drops = net.drop_commands(grudge, ips, "10.0.0.9", {("n1", "n2"): "10.0.0.9:7000"}, CHAINS)
    hooks = {cmd[2] for cmds in drops.values() for cmd in cmds}
    assert hooks <= set(CHAINS.values()), hooks


def test_a_host_heal_keeps_ssh_out_of_every_cut_before_any_drop() -> None:
    heal = net.host_heal_commands(CHAINS, 2222)
    assert heal[0] == ["iptables", "-F", "squall-x-in", "-w"]
    assert heal[1][5:9] == ["--dport", "2222", "-j", "RETURN"]
