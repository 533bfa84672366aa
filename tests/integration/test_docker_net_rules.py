"""The iptables rules a grudge turns into (pure: no Docker needed)."""

from __future__ import annotations

import pytest

from squall.cluster.base import ClusterError
from squall.cluster.net import drop_commands, parse_probe, validate_grudge

IPS = {"n1": "10.0.0.1", "n2": "10.0.0.2", "n3": "10.0.0.3"}
GATEWAY = "10.0.0.254"


def drop(chain: str, *match: str) -> list[str]:
    return ["iptables", "-A", chain, *match, "-j", "DROP", "-w"]


def test_each_node_drops_input_from_the_peers_it_holds_a_grudge_against() -> None:
    rules = drop_commands({"n1": {"n2", "n3"}, "n2": {"n1"}}, IPS, GATEWAY)
    assert rules == {
        "n1": [drop("INPUT", "-s", "10.0.0.2"), drop("INPUT", "-s", "10.0.0.3")],
        "n2": [drop("INPUT", "-s", "10.0.0.1")],
    }


def test_client_in_a_grudge_drops_the_host_gateway() -> None:
    assert drop_commands({"n3": {"client"}}, IPS, GATEWAY) == {"n3": [drop("INPUT", "-s", GATEWAY)]}


def test_a_node_never_drops_itself() -> None:
    assert drop_commands({"n1": {"n1"}}, IPS, GATEWAY) == {}


def test_proxied_pair_is_cut_at_both_senders_proxy_ports() -> None:
    # n3 -> n1 goes direct (no route), so it needs no OUTPUT rule
    routes = {("n1", "n2"): "172.17.0.1:4012", ("n2", "n1"): "172.17.0.1:4021"}
    rules = drop_commands({"n2": {"n1"}, "n1": {"n3"}}, IPS, GATEWAY, routes)
    out = "-p", "tcp", "-d", "172.17.0.1", "--dport"
    assert rules["n1"] == [drop("INPUT", "-s", "10.0.0.3"), drop("OUTPUT", *out, "4012")]
    assert rules["n2"] == [drop("INPUT", "-s", "10.0.0.1"), drop("OUTPUT", *out, "4021")]
    assert "n3" not in rules


@pytest.mark.parametrize(
    "grudge, complaint",
    [
        ({"n9": {"n1"}}, "grudge names node 'n9'"),
        ({"n1": {"n9"}}, r"grudge\['n1'\] names \['n9'\], unknown"),
        ({"n1": "n2"}, "must be a set of node names"),
    ],
)
def test_bad_grudges_are_refused_with_the_fix(grudge: dict, complaint: str) -> None:
    with pytest.raises(ClusterError, match=complaint):
        validate_grudge(grudge, IPS)


def test_probe_output_is_read_from_its_last_line() -> None:
    assert parse_probe('noise\n{"n2": true, "n3": false}\n') == {"n2": True, "n3": False}
    with pytest.raises(ClusterError, match="printed nothing"):
        parse_probe("")
