"""The ssh backend: each node on a real host of its own, driven over SSH (Jepsen's control node).

The hosts come from an inventory (``squall.cluster.inventory``). Nothing of a
run lives on a host outside its run directory, ``<dir>/runs/<run>/``, but
what the system and its faults name by absolute path: their mounts (the
store's code, the FUSE layers) become symlinks to their uploads in the run
directory, and the faults' scratch files (``NodeNeeds.scratch``). Every one
of those is written to the run's manifest on the host before it is made, by
``squall.cluster.hostagent``, which does each host-side step in one call.

* the node is the system's ``NodeSpec`` for a ``host`` runtime: the system's
  packages were installed once by ``squall hosts prepare``; its files are
  written under the run directory; it runs as root in its own session,
  marked ``SQUALL_RUN=<run>`` in its environment, so a kill takes its whole
  process group (FUSE daemons included) and a sweep finds every process of
  the run even after its runner died;
* kill is SIGKILL of that group (then a lazy unmount of what it left
  mounted), pause SIGSTOP/SIGCONT of the node process, as in a container;
* partitions are the same grudges and ``squall.cluster.net`` rules as on
  docker, but in chains of the run's own (a host's firewall is not ours to
  flush), with the SSH port exempt so a cut never cuts the backend off;
* logs and data directories come back over SFTP.

``down`` (the runner's final step, and at exit) undoes it all on every
host; ``squall hosts clean`` does the same for a runner killed outright.
This backend never talks to a Docker engine.
"""

from __future__ import annotations

import atexit
import hashlib
import shlex
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from squall.cluster import hosts, net
from squall.cluster.base import Cluster, ClusterError, ClusterSpec, Grudge
from squall.cluster.inventory import Inventory, load_inventory
from squall.cluster.remote import Remote
from squall.protocols import System
from squall.util import unpack_dir, write_private


class SshCluster(Cluster):
    supports = frozenset({"kill", "pause", "partition", "fuse", "preload", "files-when-stopped"})
    kind = "ssh"

    def __init__(
        self,
        spec: ClusterSpec,
        system: System,
        inventory: Inventory | str | Path | None = None,
        progress: Callable[[str], None] | None = None,
        healthy_timeout: float = 60.0,
    ) -> None:
        super().__init__(spec, system)
        source = inventory if inventory is not None else spec.inventory
        if source is None:
            raise ClusterError("the ssh backend needs an inventory: --inventory hosts.yaml")
        self.inventory = source if isinstance(source, Inventory) else load_inventory(source)
        if len(self.inventory.hosts) != spec.nodes:
            raise ClusterError(
                f"inventory {self.inventory.path} lists {len(self.inventory.hosts)} hosts but "
                f"the test wants {spec.nodes} nodes; pass --nodes {len(self.inventory.hosts)}"
            )
        self.remote = Remote(self.inventory)
        self._say = progress or (lambda _msg: None)
        self.healthy_timeout = healthy_timeout
        self.rdir = f"{self.inventory.dir}/runs/{spec.name}"
        tag = hashlib.sha1(spec.name.encode()).hexdigest()[:8]
        self.chains = {"INPUT": f"squall-{tag}-in", "OUTPUT": f"squall-{tag}-out"}
        self._checks: dict[str, hosts.HostCheck] = {}
        self._began: set[str] = set()
        self._launch: dict[str, dict[str, Any]] = {}  # node -> argv and env of its start
        self._starts: dict[str, list[tuple[float, int]]] = {}  # node -> (time, log offset)
        self._grudge: dict[str, set[str]] = {}
        self._control: dict[str, str] = {}
        self._pids: dict[str, int] = {}  # the node process each start made

    # -- lifecycle -------------------------------------------------------------------
    def up(self) -> None:
        atexit.register(self.down)
        try:
            self._say(f"connecting to {len(self.nodes)} hosts over SSH")
            self.remote.connect(self.nodes)
            pkgs = hosts.required_packages(self.system)
            services = hosts.required_services(self.system)
            self._checks = hosts.on_all(
                self.nodes, lambda n: hosts.check_host(self.remote, n, pkgs, services)
            )
            said = [
                r
                for c in self._checks.values()
                if (r := hosts.refusal(c, self.inventory, self.system.name))
            ]
            if said:
                raise ClusterError("; ".join(said))
            hosts.on_all(self.nodes, self._claim)
            self._say(f"installing and starting {self.system.name} on {len(self.nodes)} hosts")
            hosts.on_all(self.nodes, self._install)
            hosts.on_all(self.nodes, self.start)
            self.wait_healthy_or_explain(self.healthy_timeout)
        except BaseException:
            self.down()
            raise

    def _claim(self, node: str) -> None:
        """Makes the run directory on the node's host, refusing a host another live run holds."""
        for run, who in self.remote.agent(node, "runs")["runs"].items():
            if run == self.spec.name:
                continue
            if hosts.owner_alive(who) is False:
                self.remote.agent(node, "clean", run=run)
                self._say(f"{node}: removed leftovers of killed run {run}")
                continue
            raise ClusterError(
                f"{node} is in use by run {run} (pid {who.get('pid')} on {who.get('host')}); "
                f"wait for it, or squall hosts clean {self.inventory.path} --force if it is gone"
            )
        check = self._checks[node]
        self._began.add(node)  # from here on, down() cleans this host
        self.remote.agent(
            node,
            "begin",
            run=self.spec.name,
            uid=check.uid,
            gid=check.gid,
            chains=self.chains,
            manifest={"run": self.spec.name, "owner": hosts.owner(node)},
        )
        self._control[node] = self.remote.control_address(node)
        self._apply(node, [])

    def _install(self, node: str) -> None:
        """Uploads the system's and faults' mounts and the node's files; records how to start it."""
        names = [p.name for p in self.system.ports]
        spec = self.node_spec(
            node,
            listen={p.name: f"0.0.0.0:{p.number}" for p in self.system.ports},
            peers={p: {n: self.address(n, p) for n in self.nodes} for p in names},
            data_dir=self.data_dir(node),
            config_dir=f"{self.rdir}/etc",
            runtime="host",
        )
        mounts = dict(spec.mounts)
        for need in self.spec.needs:
            mounts.update(need.mounts)
        links = {}
        for local, inside in mounts.items():
            # Uploaded to the same relative place, so files mounted side by side stay
            # siblings (python3 finds a script's neighbours through its real path).
            upload = f"{self.rdir}/mounts{inside}"
            self.remote.put(node, local, upload)
            links[inside] = upload
        scratch = [p for need in self.spec.needs for p in need.scratch]
        self.remote.agent(node, "scratch", run=self.spec.name, paths=scratch)
        if links:
            self.remote.agent(node, "link", run=self.spec.name, links=links)
        with tempfile.TemporaryDirectory(prefix="squall-ssh-") as tmp:
            for path, text in [*spec.files.items(), *spec.secrets.items()]:
                if not path.startswith(f"{self.rdir}/etc/"):
                    raise ClusterError(f"{self.system.name} wrote {path}, outside its config_dir")
                staged = Path(tmp) / Path(path).name
                if path in spec.secrets:  # 0600, kept by the upload (preserve), gone at clean
                    write_private(staged, text)
                else:
                    staged.write_text(text)
                self.remote.put(node, staged, path)
        self._launch[node] = {
            "argv": [*self.spec.wrapper(self.data_dir(node)), *spec.argv],
            "env": dict(spec.env),
        }

    def start(self, node: str) -> None:
        """Starts the node (again): same data, config and address; rules stay on the host."""
        if node not in self._launch:
            raise ClusterError(f"node {node!r} is not installed; is the cluster up?")
        if self.is_running(node):
            return
        when = time.time()
        got = self.remote.agent(node, "start", run=self.spec.name, **self._launch[node])
        self._starts.setdefault(node, []).append((when, int(got["log_offset"])))
        self._pids[node] = int(got["pid"])

    def down(self) -> None:
        """Undoes everything of the run on every host it touched. Safe to call twice."""
        atexit.unregister(self.down)
        failed = []
        for node in sorted(self._began):
            try:
                self.remote.agent(node, "clean", run=self.spec.name)
                self._began.discard(node)
            except ClusterError as exc:
                failed.append(str(exc))
        self._grudge.clear()
        self.remote.close()
        if failed:
            raise ClusterError(
                f"could not clean every host of run {self.spec.name}: {'; '.join(failed)} — "
                f"run squall hosts clean {self.inventory.path} when the hosts answer"
            )

    # -- addressing ------------------------------------------------------------------
    def address(self, node: str, port: str | None = None) -> str:
        number = self.ports[port or self.client_port].number
        return f"{self.inventory.host(node).address}:{number}"

    def peer_upstream(self, node: str) -> str:
        return self.address(node, self.system.peer_port)

    def data_dir(self, node: str) -> str:
        return f"{self.rdir}/data"

    # -- faults ----------------------------------------------------------------------
    def kill(self, node: str) -> None:
        """SIGKILLs the node's process group and waits until every process of it is gone."""
        # The signal first, in one short command (a fault's window opens when it was
        # sent); then the agent waits for the group to be gone and unmounts what it left.
        self._signal(node, "KILL", group=True)
        self.remote.agent(node, "kill", run=self.spec.name)

    def pause(self, node: str) -> None:
        self._signal(node, "STOP")

    def resume(self, node: str) -> None:
        self._signal(node, "CONT")

    def _signal(self, node: str, sig: str, group: bool = False) -> None:
        # The pid is the one this run's own start made: within a run it is not
        # recycled, and a node that died meanwhile makes kill(1) fail, not hit another.
        pid = self._pids.get(node)
        if pid is None:
            if group:
                return  # never started: nothing to kill
            raise ClusterError(f"node {node} is not running; start it first")
        target = f"-{pid}" if group else str(pid)
        rc, out = self.remote.run(node, ["kill", "-s", sig, "--", target], root=True)
        if rc != 0 and not group:
            raise ClusterError(f"could not send SIG{sig} to {node}: {out[-200:]!r}")

    def is_running(self, node: str) -> bool:
        if node not in self._began:
            return False
        return bool(self.remote.agent(node, "status", run=self.spec.name).get("running"))

    def exec(self, node: str, argv: Sequence[str], timeout: float = 30) -> tuple[int, str]:
        """Runs argv on the node's host, as root; (exit code, stdout+stderr). 124: timed out."""
        rc, out = self.remote.run(
            node, ["timeout", "-k", "1", str(timeout), *argv], root=True, timeout=timeout + 5
        )
        return rc, out.decode(errors="replace")

    def partition(self, grudge: Grudge) -> None:
        """Makes each host drop packets from the nodes its grudge names (replacing any old one)."""
        net.validate_grudge(grudge, self.nodes)
        self._grudge = {n: set(peers) for n, peers in grudge.items()}
        ips = {n: socket.gethostbyname(self.inventory.host(n).address) for n in self.nodes}
        routes = self.spec.peer_routes()

        def apply(node: str) -> None:
            # Each host sees this machine at its own address: the ``client`` member's source.
            drops = net.drop_commands(self._grudge, ips, self._control[node], routes, self.chains)
            self._apply(node, drops.get(node, []))

        hosts.on_all(self.nodes, apply)

    def heal(self) -> None:
        self._grudge = {}
        hosts.on_all(sorted(self._began), lambda n: self._apply(n, []))

    def _apply(self, node: str, drops: list[list[str]]) -> None:
        port = self.inventory.host(node).port
        commands = net.host_heal_commands(self.chains, port) + drops
        rc, out = self.exec(node, ["sh", "-c", " && ".join(shlex.join(c) for c in commands)], 15)
        if rc != 0:
            raise ClusterError(f"iptables failed on {node} (exit {rc}): {out.strip()[-300:]}")

    # -- files and logs --------------------------------------------------------------
    def read_file(self, node: str, path: str) -> bytes | None:
        q = shlex.quote(path)
        rc, out = self.remote.run(node, f"test -f {q} || exit 3; cat {q}", root=True)
        if rc == 3:
            return None
        if rc != 0:
            raise ClusterError(f"could not read {path} on {node}: {out[-300:]!r}")
        return out

    def write_file(self, node: str, path: str, data: bytes) -> None:
        q = shlex.quote(path)
        parent = shlex.quote(str(Path(path).parent))
        rc, out = self.remote.run(
            node, f"sh -c {shlex.quote(f'mkdir -p {parent} && cat > {q}')}", root=True, input=data
        )
        if rc != 0:
            raise ClusterError(f"could not write {path} on {node}: {out[-300:]!r}")

    def logs(self, node: str, since: float | None = None) -> str:
        """The node's output; with ``since``, from the first start at or after that time."""
        offset = 0
        if since is not None:
            later = [o for t, o in self._starts.get(node, []) if t >= since]
            offset = later[0] if later else 0
        rc, out = self.remote.run(
            node, ["tail", "-c", f"+{offset + 1}", f"{self.rdir}/node.log"], root=True
        )
        return out.decode(errors="replace") if rc == 0 else ""

    def collect(self, dest: Path, data: bool = False) -> None:
        """Writes ``dest/<node>/node.log`` and, with ``data``, ``dest/<node>/data/`` (SFTP)."""

        def one(node: str) -> None:
            out = Path(dest) / node
            out.mkdir(parents=True, exist_ok=True)
            self.remote.get(node, f"{self.rdir}/node.log", out / "node.log")
            if not data:
                return
            check = self._checks[node]
            packed = self.remote.agent(
                node, "pack", run=self.spec.name, uid=check.uid, gid=check.gid
            )
            with tempfile.TemporaryDirectory(prefix="squall-collect-") as tmp:
                tar = Path(tmp) / "data.tar"
                if self.remote.get(node, packed["path"], tar):
                    unpack_dir(tar, "data", out / "data")

        hosts.on_all(sorted(self._began), one)
