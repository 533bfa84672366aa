"""The docker backend: one private bridge network and one container per node, for any system.

Every object this backend creates carries ``squall.run=<run>`` plus the pid
of the process that owns it, so ``squall.cluster.cleanup`` can find what a
runner killed with SIGKILL left behind. The image is the system's recipe
(``System.image``) plus what the backend and its faults need; what the
system mounts (its code, for the store) is bind-mounted read-only, so editing
it needs no rebuild. Data lives in a labelled docker volume per node: it
survives kill/start like a disk survives a crash, and its writes go to the
host's filesystem rather than through the image's overlay.

A node's client ports are published on 127.0.0.1 only; its peer-only ports
are not published at all. We pick the host ports ourselves instead of letting
Docker choose, because Docker picks a *new* random port every time a
container starts again, which would silently move a node's address after
each kill/start.
"""

from __future__ import annotations

import atexit
import io
import ipaddress
import os
import re
import shlex
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import docker.errors
from docker.client import DockerClient
from docker.models.containers import Container

from squall import owner
from squall.cluster import net
from squall.cluster.base import Cluster, ClusterError, ClusterSpec, Grudge
from squall.cluster.dockerutil import (
    LABEL_CREATED,
    LABEL_NODE,
    LABEL_OWNER,
    LABEL_RUN,
    LABEL_TMP,
    copy_out,
    docker_client,
    quietly,
)
from squall.cluster.image import ensure_image
from squall.cluster.procs import process_stopped
from squall.protocols import NodeSpec, System
from squall.util import free_ports, write_private

DATA_DIR = "/var/lib/squall"  # every node's data volume, whatever the system
CONFIG_DIR = "/etc/squall"  # where a NodeSpec's files are mounted
NODE_MEMORY = "1g"  # each node container's memory limit (swap included)
PORT_TRIES = 3  # starts of one node whose published port another run took first
_NAME_OK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class DockerCluster(Cluster):
    supports = frozenset(
        {"kill", "pause", "partition", "proxy-peers", "fuse", "preload", "files-when-stopped"}
    )
    kind = "docker"

    def __init__(
        self,
        spec: ClusterSpec,
        system: System,
        client: DockerClient | None = None,
        progress: Callable[[str], None] | None = None,
        healthy_timeout: float = 60.0,
        memory: str = NODE_MEMORY,
    ) -> None:
        super().__init__(spec, system)
        if not _NAME_OK.match(spec.name):
            raise ClusterError(
                f"run name {spec.name!r} cannot name Docker objects; use letters, "
                "digits, '_', '.' or '-', starting with a letter or digit"
            )
        self._client = client
        self._say = progress or (lambda _msg: None)
        self.healthy_timeout = healthy_timeout
        self.memory = memory
        self.network_name = f"squall-{spec.name}"
        self._containers: dict[str, Container] = {}
        self._ports: dict[tuple[str, str], int] = {}  # (node, client port name) -> host port
        self._tmp: Path | None = None
        self._grudge: dict[str, set[str]] = {}

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def _labels(self, node: str | None = None) -> dict[str, str]:
        labels = {
            LABEL_RUN: self.spec.name,
            LABEL_OWNER: str(os.getpid()),
            LABEL_CREATED: str(int(time.time())),
            **owner.labels(),  # how a sweep in any PID namespace tells this process lives
        }
        if self._tmp is not None:
            labels[LABEL_TMP] = str(self._tmp)
        if node is not None:
            labels[LABEL_NODE] = node
        return labels

    # -- lifecycle -------------------------------------------------------
    def up(self) -> None:
        atexit.register(self.down)
        try:
            image = ensure_image(self.system.image(), self._say, self.client)
            self._tmp = Path(tempfile.mkdtemp(prefix=f"squall-{self.spec.name}-"))
            self._create_network()
            self._pick_ports(self.nodes)
            self._say(f"starting {len(self.nodes)} containers on {self.network_name}")
            with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
                started = list(pool.map(lambda n: self._run_container(image, n), self.nodes))
            self._containers = dict(zip(self.nodes, started, strict=True))
            self.wait_healthy_or_explain(self.healthy_timeout)
        except BaseException:
            self.down()
            raise

    def _create_network(self) -> None:
        try:
            self.client.networks.create(self.network_name, driver="bridge", labels=self._labels())
        except docker.errors.APIError as exc:
            hint = (
                "Docker has no free address pool left: remove leftover networks "
                "(python -m squall.cluster.cleanup, `docker network ls`)"
                if "address pool" in str(exc)
                else "is a run with this name still up?"
            )
            raise ClusterError(
                f"could not create network {self.network_name}: {exc}; {hint}"
            ) from None

    def _node_spec(self, node: str) -> tuple[NodeSpec, Path]:
        """The system's NodeSpec for ``node``, its files written to a host dir mounted at CONFIG_DIR."""
        assert self._tmp is not None
        spec = self.node_spec(
            node,
            listen={p.name: f"0.0.0.0:{p.number}" for p in self.system.ports},
            peers={p.name: {n: f"{n}:{p.number}" for n in self.nodes} for p in self.system.ports},
            data_dir=DATA_DIR,
            config_dir=CONFIG_DIR,
            runtime="container",
        )
        files = self._tmp / node
        files.mkdir(parents=True, exist_ok=True)
        for path, text in spec.files.items():
            rel = Path(path).relative_to(CONFIG_DIR)  # a NodeSpec writes only under config_dir
            (files / rel).parent.mkdir(parents=True, exist_ok=True)
            (files / rel).write_text(text)
        for path, text in spec.secrets.items():  # removed with the rest of _tmp at down()
            rel = Path(path).relative_to(CONFIG_DIR)
            (files / rel).parent.mkdir(parents=True, exist_ok=True)
            write_private(files / rel, text)
        return spec, files

    def _run_kwargs(self, image: str, node: str) -> dict[str, Any]:
        """Everything ``containers.run`` gets for one node: the system's spec plus the faults' needs."""
        spec, files = self._node_spec(node)
        needs = self.spec.needs
        volume = self.client.volumes.create(
            f"squall-{self.spec.name}-{node}-data", labels=self._labels(node)
        )
        mounts = dict(spec.mounts)
        for n in needs:
            mounts.update(n.mounts)
        volumes: dict[str, dict[str, str]] = {
            host: {"bind": inside, "mode": "ro"} for host, inside in mounts.items()
        }
        volumes[str(files)] = {"bind": CONFIG_DIR, "mode": "ro"}
        volumes[volume.name] = {"bind": DATA_DIR, "mode": "rw"}
        return dict(
            image=image,
            command=[*self.spec.wrapper(DATA_DIR), *spec.argv],
            name=f"squall-{self.spec.name}-{node}",
            hostname=node,
            labels=self._labels(node),
            detach=True,
            network=self.network_name,
            networking_config={
                self.network_name: self.client.api.create_endpoint_config(aliases=[node])
            },
            ports={
                f"{p.number}/tcp": ("127.0.0.1", self._ports[(node, p.name)])
                for p in self.system.ports
                if p.client
            },
            cap_add=sorted({"NET_ADMIN", *(c for n in needs for c in n.capabilities)}),
            devices=sorted({f"{d}:{d}:rwm" for n in needs for d in n.devices}),
            environment=dict(spec.env),
            volumes=volumes,
            # A node that balloons (a huge request, a leak) is killed by the kernel instead
            # of taking the machine's memory from the runner and the other nodes.
            mem_limit=self.memory,
            memswap_limit=self.memory,
        )

    def _pick_ports(self, nodes: list[str]) -> None:
        # All at once, held open together, so two nodes of one run never get the same port.
        keys = [(n, p.name) for n in nodes for p in self.system.ports if p.client]
        self._ports.update(zip(keys, free_ports(len(keys)), strict=True))

    def _run_container(self, image: str, node: str) -> Container:
        # A port free when picked can be taken before Docker binds it: another run on
        # the machine picked the same one (seen with four test runs at once). Docker
        # then refuses the start; the node gets fresh ports and one more try.
        for attempt in range(PORT_TRIES):
            try:
                return self.client.containers.run(**self._run_kwargs(image, node))
            except docker.errors.APIError as exc:
                if "port is already allocated" not in str(exc) or attempt == PORT_TRIES - 1:
                    raise ClusterError(f"could not start the container for {node}: {exc}") from None
                self._discard(node)
                self._pick_ports([node])
        raise AssertionError("unreachable")

    def _discard(self, node: str) -> None:
        """Removes the node's half-started container so its name can be used again."""
        for c in self.client.containers.list(
            all=True,
            filters={"label": f"{LABEL_NODE}={node}", "name": f"squall-{self.spec.name}-{node}"},
        ):
            quietly(partial(c.remove, force=True, v=True))

    def log_tail(self, node: str, lines: int = 20) -> str:
        try:
            return self.container(node).logs(tail=lines).decode(errors="replace")
        except docker.errors.APIError as exc:
            return f"(no log: {exc})"

    def down(self) -> None:
        atexit.unregister(self.down)
        try:
            client = self.client
        except ClusterError:
            return
        flt = {"label": f"{LABEL_RUN}={self.spec.name}"}
        failed: list[str] = []  # try every removal before complaining about any

        def remove(name: str, action: Callable[[], object]) -> None:
            try:
                quietly(action)
            except docker.errors.APIError as exc:
                failed.append(f"{name}: {exc}")

        for c in client.containers.list(all=True, filters=flt):
            remove(c.name, partial(c.remove, force=True, v=True))
        for n in client.networks.list(filters=flt):
            remove(n.name, n.remove)  # fails if a foreign container is still attached
        for v in client.volumes.list(filters=flt):
            remove(v.name, partial(v.remove, force=True))
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._containers.clear()
        self._grudge.clear()
        if failed:
            raise ClusterError(
                "could not remove everything of run "
                + self.spec.name
                + ": "
                + "; ".join(failed)
                + " — remove it by hand, or run python -m squall.cluster.cleanup after this process exits"
            )

    # -- addressing ------------------------------------------------------
    def container(self, node: str) -> Container:
        try:
            return self._containers[node]
        except KeyError:
            raise ClusterError(
                f"no container for node {node!r}: the cluster is not up, or "
                f"the node is not one of {self.nodes}"
            ) from None

    def address(self, node: str, port: str | None = None) -> str:
        key = (node, port or self.client_port)
        if key not in self._ports:
            raise ClusterError(
                f"node {node!r} has no published port {key[1]!r}; is the cluster up?"
            )
        return f"127.0.0.1:{self._ports[key]}"

    def peer_upstream(self, node: str) -> str:
        # Resolved on the run's network by the proxy server (it follows a
        # restarted node to its new address).
        port = self.ports[self.system.peer_port]
        return f"{node}:{port.number}"

    def data_dir(self, node: str) -> str:
        return DATA_DIR

    def proxy_host(self) -> str:
        """The host's address on Docker's default bridge: reachable from every container,
        and known before this run's network exists."""
        ipam = self.client.networks.get("bridge").attrs["IPAM"]["Config"][0]
        # Docker omits Gateway when it chose the default: the subnet's first host.
        return str(ipam.get("Gateway") or ipaddress.ip_network(ipam["Subnet"])[1])

    def name_network(self) -> str:
        return self.network_name

    def container_pid(self, node: str) -> int:
        """The host PID of the node's first process (for nsenter); 0 if it is not running."""
        c = self.container(node)
        c.reload()
        return int(c.attrs["State"]["Pid"])

    def node_ip(self, node: str) -> str:
        """The node's address on the cluster network ('' while it is stopped)."""
        c = self.container(node)
        c.reload()
        return str(c.attrs["NetworkSettings"]["Networks"][self.network_name]["IPAddress"])

    def gateway_ip(self) -> str:
        """The host's address on the cluster network: where client traffic comes from."""
        ipam = self.client.networks.get(self.network_name).attrs["IPAM"]["Config"][0]
        # Docker omits Gateway when it chose the default (the subnet's first host).
        return str(ipam.get("Gateway") or ipaddress.ip_network(ipam["Subnet"])[1])

    # -- faults ----------------------------------------------------------
    def kill(self, node: str) -> None:
        """SIGKILLs the node's container and waits until Docker sees it exited."""
        c = self.container(node)
        try:
            c.kill()
        except docker.errors.APIError as exc:
            if "is not running" not in str(exc):
                raise ClusterError(f"could not kill {node}: {exc}") from None
        c.wait(timeout=30)

    def start(self, node: str) -> None:
        """Starts a killed node again: same data volume, same config, same client port."""
        c = self.container(node)
        try:
            c.start()
        except docker.errors.APIError as exc:
            raise ClusterError(f"could not start {node}: {exc}") from None
        if self._grudge:
            # The restarted container has a fresh network namespace (no rules) and
            # perhaps a new address that other nodes' rules do not know yet.
            self._reapply_grudge()

    def pause(self, node: str) -> None:
        self._signal(node, "SIGSTOP")

    def resume(self, node: str) -> None:
        self._signal(node, "SIGCONT")

    def _signal(self, node: str, sig: str) -> None:
        # The node runs as the container's PID 1 (no init in between), so the
        # signal reaches the store process itself; an init would be stopped instead.
        try:
            self.container(node).kill(signal=sig)
        except docker.errors.APIError as exc:
            raise ClusterError(f"could not send {sig} to {node}: {exc}") from None

    def exec(self, node: str, argv: Sequence[str], timeout: float = 30) -> tuple[int, str]:
        """Runs argv inside the node; (exit code, stdout+stderr). 124 means it timed out."""
        wrapped = ["timeout", "-k", "1", str(timeout), *argv]
        try:
            rc, out = self.container(node).exec_run(wrapped)
        except docker.errors.APIError as exc:
            raise ClusterError(f"could not exec {list(argv)} on {node}: {exc}") from None
        return int(rc), out.decode(errors="replace")

    def is_running(self, node: str) -> bool:
        c = self.container(node)
        try:
            c.reload()
        except docker.errors.NotFound:
            return False
        return bool(c.status == "running")

    # -- partitions ------------------------------------------------------
    def partition(self, grudge: Grudge) -> None:
        """Makes each node drop packets from the nodes its grudge names (replacing any old one)."""
        net.validate_grudge(grudge, self.nodes)
        self._grudge = {n: set(peers) for n, peers in grudge.items()}
        self._reapply_grudge()

    def heal(self) -> None:
        self._grudge = {}
        self._on_running(lambda n: net.HEAL_COMMANDS)

    def _reapply_grudge(self) -> None:
        # One inspect per node gives both liveness and address ('' when stopped).
        ips = {n: ip for n in self.nodes if (ip := self.node_ip(n))}
        # Stopped peers send nothing; when they start, start() comes back here.
        grudge = {
            n: {p for p in peers if p in ips or p == net.CLIENT}
            for n, peers in self._grudge.items()
            if n in ips
        }
        drops = net.drop_commands(grudge, ips, self.gateway_ip(), self.spec.peer_routes())
        self._on_running(lambda n: net.HEAL_COMMANDS + drops.get(n, []), list(ips))

    def _on_running(
        self, commands: Callable[[str], list[list[str]]], running: list[str] | None = None
    ) -> None:
        """Runs each running node's command list in one shell, all nodes at once."""

        def run(node: str) -> None:
            script = " && ".join(shlex.join(c) for c in commands(node))
            rc, out = self.exec(node, ["sh", "-c", script], timeout=15)
            if rc != 0:
                raise ClusterError(
                    f"iptables failed on {node} (exit {rc}): {out.strip()}; "
                    "the container needs cap_add NET_ADMIN"
                )

        if running is None:
            running = [n for n in self.nodes if self.is_running(n)]
        with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
            list(pool.map(run, running))

    def reachability(self, timeout: float = 1.0) -> dict[tuple[str, str], bool]:
        """``(a, b) -> True`` when a connection from running node a to b's peer port got any answer.

        Each node probes its peers at the addresses it uses itself (peer routes included).
        """
        return net.reachability(
            self,
            lambda src: {n: addr for n, addr in self.peer_addresses(src).items() if n != src},
            timeout,
        )

    def peer_addresses(self, node: str) -> dict[str, str]:
        """How ``node`` reaches every node's peer port: direct, unless a fault routed it."""
        routes = self.spec.peer_routes()
        return {p: routes.get((node, p), self.peer_upstream(p)) for p in self.nodes}

    # -- files and logs of a node, running or stopped ---------------------------
    def read_file(self, node: str, path: str) -> bytes | None:
        try:
            stream, _ = self.container(node).get_archive(path)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(Path(path).name)
            return member.read() if member is not None else None

    def write_file(self, node: str, path: str, data: bytes) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(Path(path).name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if not self.container(node).put_archive(str(Path(path).parent), buf.getvalue()):
            raise ClusterError(f"could not write {path} into {node}")

    def logs(self, node: str, since: float | None = None) -> str:
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True}
        if since is not None:
            kwargs["since"] = since
        return self.container(node).logs(**kwargs).decode(errors="replace")

    # -- collection ------------------------------------------------------
    def collect(self, dest: Path, data: bool = False) -> None:
        """Writes ``dest/<node>/node.log`` and, with ``data``, ``dest/<node>/data/``."""
        for node in self.nodes:
            out = Path(dest) / node
            out.mkdir(parents=True, exist_ok=True)
            c = self.container(node)
            (out / "node.log").write_bytes(c.logs(stdout=True, stderr=True))
            if data:
                self._copy_data_still(node, out / "data")

    def _copy_data_still(self, node: str, target: Path) -> None:
        # A live node keeps writing while tar reads, and a torn copy would fail
        # the restore round trip for reasons of our own making; SIGSTOP freezes
        # it so the copy is what a crash at that instant would have left.
        # Never undo a pause fault: Docker calls a SIGSTOPped container running.
        freeze = self.is_running(node) and not process_stopped(self.container_pid(node))
        if freeze:
            self.pause(node)
        try:
            copy_out(self.container(node), DATA_DIR, target)
        finally:
            if freeze:
                self.resume(node)
