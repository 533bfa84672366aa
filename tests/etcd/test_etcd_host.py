"""An etcd member's command on a real host (the ssh backend's ``host`` runtime)."""

from __future__ import annotations

import dataclasses

import pytest

from squall.protocols import NodeContext
from squall.systems.etcd.system import EtcdSystem

NODES = ("n1", "n2", "n3")
ADDR = {"n1": "10.0.0.11", "n2": "10.0.0.12", "n3": "vm3.example"}


def host_ctx(node: str) -> NodeContext:
    # What SshCluster hands over: every peer at its inventory address.
    return NodeContext(
        node=node,
        nodes=NODES,
        listen={"client": "0.0.0.0:2379", "peer": "0.0.0.0:2380"},
        peers={
            p: {n: f"{ADDR[n]}:{num}" for n in NODES}
            for p, num in [("client", 2379), ("peer", 2380)]
        },
        data_dir="/srv/squall/runs/r1/data",
        config_dir="/srv/squall/runs/r1/etc",
        secret="0123456789abcdef0123",
        runtime="host",
    )


def flag(argv: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


def test_on_hosts_members_name_each_other_by_inventory_address():
    argvs = [list(EtcdSystem().node(host_ctx(n)).argv) for n in NODES]
    assert {flag(a, "initial-cluster") for a in argvs} == {
        "n1=http://10.0.0.11:2380,n2=http://10.0.0.12:2380,n3=http://vm3.example:2380"
    }
    n3 = argvs[2]
    assert flag(n3, "initial-advertise-peer-urls") == "http://vm3.example:2380"
    assert flag(n3, "advertise-client-urls") == "http://vm3.example:2379"
    assert flag(n3, "data-dir") == "/srv/squall/runs/r1/data/etcd"


def test_on_hosts_etcd_starts_itself_with_no_nat_prefix():
    # Peers differ from "nX:2380" here, which in a container would mean a link proxy.
    assert EtcdSystem().node(host_ctx("n1")).argv[0] == "/usr/bin/etcd"


def test_a_local_process_is_refused_naming_the_backends_that_work():
    ctx = dataclasses.replace(host_ctx("n1"), runtime="process")
    with pytest.raises(ValueError, match="--backend docker.*--backend ssh.*hosts prepare"):
        EtcdSystem().node(ctx)
