"""The node image, built with no container registry.

No registry is reachable on the machines this runs on, so the image starts
from a Debian rootfs made by ``debootstrap`` from the host's apt mirror,
imported with ``docker import``, and a small ``docker build`` on top. The
store's code is *not* baked in: containers bind-mount the ``system`` package
read-only, so editing the store never forces a rebuild. The tag is a hash of
everything that goes into the image (suite, package list, Dockerfile), so an
image is built once per machine and reused until those inputs change.

Where a registry is reachable, ``SQUALL_BASE_IMAGE=debian:bookworm-slim``
skips debootstrap and builds the same packages on top of that base instead.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker.errors
from docker.client import DockerClient, from_env

SUITE = "bookworm"
# Everything a node or a nemesis needs inside the container. python3-aiohttp
# and python3-yaml run the store; iptables/iproute2 make partitions; procps
# gives ps/pkill; faketime skews clocks; fuse3 + python3-pip carry the FUSE
# disk-stall filesystem; e2fsprogs/util-linux for fsfreeze and loop mounts.
# python3-uvloop: the store's event loop when present (it runs without it).
PACKAGES = [
    "python3",
    "python3-aiohttp",
    "python3-uvloop",
    "python3-yaml",
    "python3-pip",
    "iptables",
    "iproute2",
    "procps",
    "faketime",
    "fuse3",
    "libfuse3-3",
    "util-linux",
    "e2fsprogs",
    "ca-certificates",
]
REPO = "squall-node"
LABEL = "squall.image"

DOCKERFILE = """\
FROM {base}
ENV PYTHONPATH=/opt/squall PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN mkdir -p /opt/squall /var/lib/squall /etc/squall
LABEL {label}=node
CMD ["python3", "-m", "aurora_store.node", "--config", "/etc/squall/node.yaml"]
"""

Progress = Callable[[str], None]


class ImageError(RuntimeError):
    """The node image could not be built; the message says what to install or fix."""


def _mirror() -> str:
    """The apt mirror the host is configured with (debootstrap must use it)."""
    env = os.environ.get("SQUALL_APT_MIRROR")
    if env:
        return env
    for path in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
            if line.startswith("deb ") and "debian" in line and "security" not in line:
                parts = line.split()
                url = next((p for p in parts[1:] if p.startswith("http")), None)
                if url:
                    return url
    return "http://deb.debian.org/debian"


def image_tag() -> str:
    base = os.environ.get("SQUALL_BASE_IMAGE", "debootstrap")
    h = hashlib.sha256()
    h.update(f"{SUITE}\n{base}\n{' '.join(sorted(PACKAGES))}\n{DOCKERFILE}".encode())
    return f"{REPO}:{h.hexdigest()[:12]}"


def _client() -> DockerClient:
    try:
        return from_env(version="auto")
    except docker.errors.DockerException as exc:
        raise ImageError(
            f"cannot reach the Docker engine ({exc}); start Docker or use --backend local"
        ) from None


def ensure_image(progress: Progress | None = None, client: DockerClient | None = None) -> str:
    """Returns the node image's tag, building it first if this machine lacks it."""
    say = progress or (lambda _msg: None)
    client = client or _client()
    tag = image_tag()
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    base_image = os.environ.get("SQUALL_BASE_IMAGE")
    if base_image:
        base = base_image
    else:
        base = f"{REPO}-base:{tag.split(':')[1]}"
        try:
            client.images.get(base)
        except docker.errors.ImageNotFound:
            _import_rootfs(client, base, say)
    say(f"building {tag} on {base}")
    dockerfile = DOCKERFILE.format(base=base, label=LABEL)
    if base_image:
        dockerfile = dockerfile.replace(
            "RUN mkdir",
            "RUN apt-get update && apt-get install -y --no-install-recommends "
            + " ".join(PACKAGES)
            + " && rm -rf /var/lib/apt/lists/*\nRUN mkdir",
        )
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    ctx.seek(0)
    try:
        client.images.build(fileobj=ctx, custom_context=True, tag=tag, rm=True, forcerm=True)
    except docker.errors.BuildError as exc:
        log = "".join(str(x.get("stream", "")) for x in exc.build_log)[-2000:]
        raise ImageError(f"docker build of {tag} failed: {exc}\n{log}") from None
    say(f"image {tag} ready")
    return tag


def _import_rootfs(client: DockerClient, base: str, say: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageError(
            "debootstrap is not installed and no registry is reachable to pull a base image; "
            "install it (apt-get install -y debootstrap) — ./scripts/setup does this — or set "
            "SQUALL_BASE_IMAGE=debian:bookworm-slim where a registry is reachable"
        )
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root to build the node's rootfs; run as root once "
                         "(the image is cached afterwards)")
    mirror = _mirror()
    with tempfile.TemporaryDirectory(prefix="squall-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        say(f"debootstrap {SUITE} from {mirror} (about a minute, once per machine)")
        cmd = [
            "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
            SUITE, str(root), mirror,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise ImageError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
        for junk in ["var/cache/apt/archives", "var/lib/apt/lists"]:
            shutil.rmtree(root / junk, ignore_errors=True)
        say(f"importing the rootfs as {base}")
        tar_path = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tar_path), "."], check=True)
        repo, tag = base.split(":")
        client.api.import_image_from_file(
            str(tar_path), repository=repo, tag=tag,
            changes=['CMD ["/bin/bash"]', f"LABEL {LABEL}=base"],
        )


def tag_latest(progress: Progress | None = None, client: DockerClient | None = None) -> str:
    """Ensures the node image and tags it ``squall-node:latest`` (what docker-compose.yml runs)."""
    client = client or _client()
    tag = ensure_image(progress, client)
    client.images.get(tag).tag(REPO, "latest")
    (progress or (lambda _msg: None))(f"tagged {tag} as {REPO}:latest")
    return tag


def main(argv: list[str] | None = None) -> None:
    """``python -m squall.cluster.image [--tag-latest]``: builds the image, prints its tag.

    ``--tag-latest`` also tags it ``squall-node:latest`` for docker-compose.yml.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m squall.cluster.image", description=main.__doc__)
    parser.add_argument("--tag-latest", action="store_true",
                        help=f"also tag the image {REPO}:latest (what docker-compose.yml runs)")
    args = parser.parse_args(argv)
    tag = tag_latest(print) if args.tag_latest else ensure_image(print)
    print(tag)


if __name__ == "__main__":
    main()
