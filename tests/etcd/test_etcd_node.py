"""The command an etcd member starts with, for member i of n."""

from __future__ import annotations

from squall.protocols import NodeContext
from squall.systems.etcd.system import EtcdSystem

NODES = ("n1", "n2", "n3")


def ctx(node: str, bugs: tuple[str, ...] = (), routes: dict[str, str] | None = None) -> NodeContext:
    peers = {n: f"{n}:2380" for n in NODES} | (routes or {})
    return NodeContext(
        node=node,
        nodes=NODES,
        listen={"client": "0.0.0.0:2379", "peer": "0.0.0.0:2380"},
        peers={"client": {n: f"{n}:2379" for n in NODES}, "peer": peers},
        data_dir="/var/lib/squall",
        config_dir="/etc/squall",
        secret="0123456789abcdef0123",
        bugs=bugs,
    )


def flag(argv: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


def test_every_member_writes_the_same_initial_cluster():
    clusters = {flag(list(EtcdSystem().node(ctx(n)).argv), "initial-cluster") for n in NODES}
    assert clusters == {"n1=http://n1:2380,n2=http://n2:2380,n3=http://n3:2380"}


def test_no_fsync_is_etcds_unsafe_no_fsync_flag():
    argv = EtcdSystem().node(ctx("n1", bugs=("no-fsync",))).argv
    assert "--unsafe-no-fsync" in argv


def test_a_correct_member_fsyncs():
    assert "--unsafe-no-fsync" not in EtcdSystem().node(ctx("n1")).argv


def test_a_routed_peer_is_reached_through_a_nat_rule_to_its_proxy():
    argv = list(EtcdSystem().node(ctx("n1", routes={"n2": "172.17.0.1:41000"})).argv)
    assert "--to-destination 172.17.0.1:41000" in argv[2]


def test_a_member_with_no_routed_peer_starts_etcd_itself():
    assert EtcdSystem().node(ctx("n1")).argv[0] == "/usr/bin/etcd"


def test_stale_read_makes_that_members_reads_serializable():
    system = EtcdSystem()
    system.node(ctx("n2", bugs=("stale-read",)))
    client = system.client(lambda: {n: "127.0.0.1:1" for n in NODES}, 0, {})
    assert client.serializable == frozenset({"n2"})  # type: ignore[attr-defined]


def test_members_pre_vote_unless_told_not_to():
    assert flag(list(EtcdSystem().node(ctx("n1")).argv), "pre-vote") == "true"


def test_pre_vote_must_be_a_switch():
    import pytest

    with pytest.raises(ValueError, match="pre_vote must be true or false"):
        EtcdSystem().validate_options({"pre_vote": 1})
