"""The Aurora-style scheduler store as a ``System``: everything the suite knows about it.

The store itself (``squall.systems.aurora.store``) never imports the suite;
this adapter is the one place where the suite learns its shape: the node
config file and command, the port it listens on, how ``/status`` names the
leader, its client, its scheduler workload, the digests collected after a
run and the fidelity checker that compares them, and its bug modes.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
import yaml

from squall.cluster.base import Cluster
from squall.protocols import ImageRecipe, NodeContext, NodeSpec, Observation, Port
from squall.systems.aurora import store as store_pkg
from squall.systems.aurora.store import bugs as store_bugs
from squall.systems.aurora.store import peerauth
from squall.systems.aurora.store.config import ConfigError, from_dict

API = Port(name="api", number=8000, client=True)  # clients, status and admin calls
PEER = Port(name="peer", number=8001)  # Raft's RPCs, signed: never published to the host
IN_CONTAINER = "/opt/squall/aurora_store"  # the store's code, bind-mounted read-only
# What the image's Dockerfile sets; a "host" runtime has no Dockerfile, so its spec says it.
NODE_ENV = {"PYTHONPATH": "/opt/squall", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}

# The suite's defaults for the store's own options (``squall run --snapshot-every``...).
OPTIONS: dict[str, Any] = {
    "snapshot_every": 500,
    "snapshot_codec": "dump",
    "digest_every": 100,
    "election_timeout_ms": [300, 600],
    "heartbeat_ms": 50,
    "standby": "hot",
}
# What a status sample keeps beside role, term, leader and indexes.
SAMPLED = ("snapshot_in_progress", "sending_snapshot", "standby")


def _descriptions() -> dict[str, str]:
    """Each bug mode with the sentence its module's docstring gives it."""
    doc = store_bugs.__doc__ or ""
    out: dict[str, str] = {}
    for name in store_bugs.KNOWN:
        start = doc.find(f"``{name}``")
        text = doc[start:].split("\n", 1)[1] if start >= 0 else ""
        out[name] = " ".join(text.split("``")[0].split())
    return out


class AuroraSystem:
    """Squall's own replicated scheduler store (Raft log, SQLite state, snapshots)."""

    name = "aurora"
    ports = (API, PEER)
    peer_port = PEER.name
    bugs: Mapping[str, str] = _descriptions()
    unsupported: Mapping[str, str] = {}
    options: Mapping[str, Any] = OPTIONS

    # -- the node ---------------------------------------------------------------
    def image(self) -> ImageRecipe:
        return ImageRecipe(
            name="squall-node",
            packages=("python3-aiohttp", "python3-uvloop", "python3-yaml"),
            dockerfile=(
                "ENV " + " ".join(f"{k}={v}" for k, v in NODE_ENV.items()) + "\n"
                "RUN mkdir -p /opt/squall /var/lib/squall /etc/squall\n"
                'CMD ["python3", "-m", "aurora_store.node", "--config", '
                '"/etc/squall/node.yaml"]\n'
            ),
        )

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options merged over the defaults and checked by the store's own config rules."""
        merged = {**OPTIONS, **options}
        try:
            from_dict({"id": "n1", "data_dir": "/x", **merged})
        except ConfigError as exc:
            raise ValueError(f"aurora: {exc}") from None
        return merged

    def node(self, ctx: NodeContext) -> NodeSpec:
        secret = f"{ctx.config_dir}/secret"  # a file: never in the argv, the log or node.yaml
        config = {
            "id": ctx.node,
            "data_dir": ctx.data_dir,
            "listen": ctx.listen[API.name],
            "peer_listen": ctx.listen[PEER.name],
            "peers": {n: f"http://{addr}" for n, addr in ctx.peers[PEER.name].items()},
            "secret_file": secret,
            **{**OPTIONS, **ctx.options},
            "bugs": list(ctx.bugs),
        }
        path = f"{ctx.config_dir}/node.yaml"
        files = {path: yaml.safe_dump(config, sort_keys=False)}
        secrets = {secret: ctx.secret}
        if ctx.runtime == "process":
            root = str(Path(store_pkg.__file__).parents[4])  # the directory holding squall/
            return NodeSpec(
                argv=[sys.executable, "-m", "squall.systems.aurora.store.node", "--config", path],
                # bugs come from the config, per node: never from the runner's env
                env={"SQUALL_BUGS": "", "PYTHONPATH": root},
                files=files,
                secrets=secrets,
            )
        # In a container and on a host alike: the host's python3 runs the store's
        # code from the same path (bind-mounted into a container, uploaded to a host).
        return NodeSpec(
            argv=["python3", "-m", "aurora_store.node", "--config", path],
            env=dict(NODE_ENV) if ctx.runtime == "host" else {},
            files=files,
            secrets=secrets,
            mounts={str(Path(store_pkg.__file__).parent): IN_CONTAINER},
        )

    # -- talking to it ------------------------------------------------------------
    def client(
        self, addresses: Callable[[], Mapping[str, str]], worker: int, options: Mapping[str, Any]
    ) -> object:
        from squall.systems.aurora.client import StoreClient

        return StoreClient(
            lambda: {n: f"http://{a}" for n, a in addresses().items()},
            timeout=float(options.get("timeout", 1.0)),
            first=worker,
        )

    def observe(self, address: str, timeout: float) -> Observation | None:
        status = get_json(address, "/status", timeout)
        if not isinstance(status, dict):
            return None
        return Observation(
            role=status.get("role"),
            term=status.get("term"),
            leader=status.get("leader"),
            applied_index=status.get("applied_index"),
            commit_index=status.get("commit_index"),
            extra={k: status.get(k) for k in SAMPLED if k in status},
        )

    def snapshot(self, address: str, timeout: float, secret: str) -> dict[str, Any]:
        """POST /admin/snapshot, signed with the cluster secret: the node writes a snapshot
        now; its answer (or the error)."""
        try:
            r = requests.post(
                f"http://{address}/admin/snapshot",
                data=b"",
                headers=admin_headers(secret, "/admin/snapshot"),
                timeout=timeout,
            )
            body: Any = (
                r.json()
                if r.headers.get("content-type", "").startswith("application/json")
                else r.text
            )
            return {"status": r.status_code, "result": body}
        except requests.RequestException as exc:
            return {"error": str(exc)}

    def failpoints(self) -> Mapping[str, str]:
        """The store's failpoints, each with the sentence saying what is on disk when it fires."""
        from squall.systems.aurora.store import failpoints

        return dict(failpoints.POINTS)

    def failpoint(
        self, address: str, timeout: float, secret: str, point: str, action: str, at: str = "now"
    ) -> dict[str, Any]:
        """POST /admin/failpoints, signed: arms ``point`` with ``action`` (``off`` disarms);
        the node's answer ({"armed", "hits"}) or the error."""
        body = json.dumps({"point": point, "action": action, "at": at}).encode()
        try:
            r = requests.post(
                f"http://{address}/admin/failpoints",
                data=body,
                headers={
                    **admin_headers(secret, "/admin/failpoints", body),
                    "Content-Type": "application/json",
                },
                timeout=timeout,
            )
            return {"status": r.status_code, "result": r.json()}
        except (requests.RequestException, ValueError) as exc:
            return {"error": str(exc)}

    def failpoint_hits(self, address: str, timeout: float) -> dict[str, int] | None:
        """How often each armed failpoint fired on the node at ``address`` (None: no answer)."""
        got = get_json(address, "/status", timeout)
        return dict(got["failpoints"]["hits"]) if isinstance(got, dict) else None

    def refusal(self, log_tail: str) -> str | None:
        """The line in which a node refused the data it found on start, if it did."""
        said = [ln.strip() for ln in log_tail.splitlines() if "refusing to start" in ln]
        return said[-1] if said else None

    def standing(self) -> Any:
        """The cluster a person keeps running (``squall cluster up|status|down``)."""
        from squall.systems.aurora import standing

        return standing

    # -- what its runs need beside the generic parts --------------------------------
    def workloads(self) -> dict[str, Callable[..., Any]]:
        from squall.systems.aurora.workload import SchedulerWorkload

        return {"scheduler": SchedulerWorkload}

    def checkers(self, test: Mapping[str, Any]) -> dict[str, Any]:
        from squall.systems.aurora.fidelity import check_fidelity

        return {"fidelity": check_fidelity}

    def collect(self, cluster: Cluster, dest: Path, restarts: Mapping[str, int]) -> dict[str, Any]:
        from squall.systems.aurora.collect import collect_nodes

        return collect_nodes(cluster, dest, restarts)

    def committed(self, nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
        from squall.systems.aurora.committed import committed_requests

        return committed_requests(nodes)


_LOCAL = threading.local()  # one HTTP session per thread: the sampler polls from several


def _session() -> requests.Session:
    if not hasattr(_LOCAL, "session"):
        _LOCAL.session = requests.Session()
    return _LOCAL.session  # type: ignore[no-any-return]


def get_json(address: str, path: str, timeout: float = 1.0) -> Any:
    """GET http://address/path as JSON, or None if the node does not answer 200 in time."""
    try:
        r = _session().get(f"http://{address}{path}", timeout=timeout)
        if r.status_code != 200:
            return None
        return r.json()
    except (requests.RequestException, ValueError):
        return None


def admin_headers(secret: str, route: str, body: bytes = b"") -> dict[str, str]:
    """The headers that sign an admin call (``POST /admin/...``) with the cluster secret."""
    return peerauth.headers(secret.encode(), peerauth.ADMIN, peerauth.ANY_NODE, route, {}, body)


def status(cluster: Cluster, node: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """A node's whole ``/status`` (the store's tests read more than an Observation holds)."""
    got = get_json(cluster.address(node), "/status", timeout)
    return got if isinstance(got, dict) else None


def url(cluster: Cluster, node: str) -> str:
    """The base URL of a node's API."""
    return f"http://{cluster.address(node)}"
