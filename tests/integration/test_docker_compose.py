"""docker-compose.yml brings up a working 5-node store on loopback ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from squall.cluster.docker import docker_client
from squall.cluster.image import ensure_image
from squall.systems.aurora.standing import ensure_secret
from squall.util import free_port
from tests.aurora import AURORA

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
NODES = [f"n{i}" for i in range(1, 6)]


@pytest.fixture
def compose() -> Iterator[dict[str, int]]:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (v1) is not installed")
    project = f"squalltest{os.getpid()}"
    ports = {n: free_port() for n in NODES}
    image = ensure_image(AURORA.image(), client=docker_client())
    ensure_secret()
    env = {
        **os.environ,
        "SQUALL_IMAGE": image,
        **{f"SQUALL_{n.upper()}_PORT": str(p) for n, p in ports.items()},
    }
    base = ["docker-compose", "-p", project, "-f", str(ROOT / "docker-compose.yml")]
    try:
        up = subprocess.run(
            base + ["up", "-d"], env=env, capture_output=True, text=True, timeout=180
        )
        assert up.returncode == 0, f"docker-compose up failed:\n{up.stderr[-2000:]}"
        yield ports
    finally:
        subprocess.run(base + ["down", "-v", "-t", "1"], env=env, capture_output=True, timeout=180)
    left = docker_client().containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}
    )
    assert left == [], f"docker-compose down left {left}"


def statuses(ports: dict[str, int]) -> dict[str, dict]:
    found = {}
    for node, port in ports.items():
        try:
            found[node] = requests.get(f"http://127.0.0.1:{port}/status", timeout=0.5).json()
        except (requests.RequestException, ValueError):
            pass
    return found


def test_compose_brings_up_five_healthy_nodes_with_one_leader(compose: dict[str, int]) -> None:
    deadline = time.monotonic() + 60
    seen: dict[str, dict] = {}
    while time.monotonic() < deadline:
        seen = statuses(compose)
        leaders = {s.get("leader") for s in seen.values()}
        if len(seen) == 5 and len(leaders) == 1 and None not in leaders:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"within 60s, never 5 nodes agreeing on a leader; saw {seen}")
    assert sorted(s["id"] for s in seen.values()) == NODES
    assert [s["role"] for s in seen.values()].count("leader") == 1


def test_compose_nodes_are_loopback_only_unprivileged_with_net_admin() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert sorted(services) == NODES
    for name, svc in services.items():
        assert svc["image"] == f"${{SQUALL_IMAGE:-{AURORA.image().name}:latest}}", name
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"]), (name, svc["ports"])
        assert svc.get("privileged") is not True and svc["cap_add"] == ["NET_ADMIN"], name
        assert "./squall/systems/aurora/store:/opt/squall/aurora_store:ro" in svc["volumes"], name
