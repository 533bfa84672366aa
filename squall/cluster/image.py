"""Node images, built with no container registry, from a system's recipe.

No registry is reachable on the machines this runs on, so an image starts
from a Debian rootfs made by ``debootstrap`` from the host's apt mirror,
imported with ``docker import``, and a small ``docker build`` on top. Which
packages and setup lines go in is the system's recipe (``System.image``),
plus what this backend and its faults need in any node (``BASE_PACKAGES``).
A system's code may stay out of the image (the store's is bind-mounted), so
editing it never forces a rebuild. The tag is a hash of everything that goes
into the image (suite, packages, Dockerfile), so an image is built once per
machine and reused until those inputs change.

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

from squall.protocols import ImageRecipe

SUITE = "bookworm"
# What every node needs inside its container whatever the system, for the
# backend and the faults: iptables/iproute2 make partitions; procps gives
# ps/pkill; python3 runs the reachability probe and the FUSE layers (fuse3,
# libfuse3-3) of the disk-stall and power-cut faults; util-linux, e2fsprogs
# and ca-certificates are the small rest.
BASE_PACKAGES = (
    "python3",
    "iptables",
    "iproute2",
    "procps",
    "fuse3",
    "libfuse3-3",
    "util-linux",
    "e2fsprogs",
    "ca-certificates",
)
LABEL = "squall.image"

DOCKERFILE = """\
FROM {base}
LABEL {label}={name}
{lines}"""

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


def packages(recipe: ImageRecipe) -> list[str]:
    return sorted(set(BASE_PACKAGES) | set(recipe.packages))


def dockerfile(recipe: ImageRecipe, base: str) -> str:
    return DOCKERFILE.format(base=base, label=LABEL, name=recipe.name, lines=recipe.dockerfile)


def image_tag(recipe: ImageRecipe) -> str:
    base = os.environ.get("SQUALL_BASE_IMAGE", "debootstrap")
    h = hashlib.sha256()
    h.update(f"{SUITE}\n{base}\n{' '.join(packages(recipe))}\n{dockerfile(recipe, '')}".encode())
    return f"{recipe.name}:{h.hexdigest()[:12]}"


def _client() -> DockerClient:
    try:
        return from_env(version="auto")
    except docker.errors.DockerException as exc:
        raise ImageError(
            f"cannot reach the Docker engine ({exc}); start Docker or use --backend local"
        ) from None


def ensure_image(
    recipe: ImageRecipe, progress: Progress | None = None, client: DockerClient | None = None
) -> str:
    """Returns the tag of the recipe's image, building it first if this machine lacks it."""
    say = progress or (lambda _msg: None)
    client = client or _client()
    tag = image_tag(recipe)
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    base_image = os.environ.get("SQUALL_BASE_IMAGE")
    if base_image:
        base = base_image
    else:
        base = f"{recipe.name}-base:{tag.split(':')[1]}"
        try:
            client.images.get(base)
        except docker.errors.ImageNotFound:
            _import_rootfs(client, base, packages(recipe), say)
    say(f"building {tag} on {base}")
    text = dockerfile(recipe, base)
    if base_image:
        install = (
            "RUN apt-get update && apt-get install -y --no-install-recommends "
            + " ".join(packages(recipe))
            + " && rm -rf /var/lib/apt/lists/*\n"
        )
        text = text.replace(f"LABEL {LABEL}", install + f"LABEL {LABEL}", 1)
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as tar:
        data = text.encode()
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


def _import_rootfs(client: DockerClient, base: str, pkgs: list[str], say: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageError(
            "debootstrap is not installed and no registry is reachable to pull a base image; "
            "install it (apt-get install -y debootstrap) — ./scripts/setup does this — or set "
            "SQUALL_BASE_IMAGE=debian:bookworm-slim where a registry is reachable"
        )
    if os.geteuid() != 0:
        raise ImageError(
            "debootstrap needs root to build the node's rootfs; run as root once "
            "(the image is cached afterwards)"
        )
    mirror = _mirror()
    with tempfile.TemporaryDirectory(prefix="squall-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        say(f"debootstrap {SUITE} from {mirror} (about a minute, once per machine)")
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(pkgs)}",
            SUITE,
            str(root),
            mirror,
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
            str(tar_path),
            repository=repo,
            tag=tag,
            changes=['CMD ["/bin/bash"]', f"LABEL {LABEL}=base"],
        )


def tag_latest(
    recipe: ImageRecipe, progress: Progress | None = None, client: DockerClient | None = None
) -> str:
    """Ensures the recipe's image and tags it ``<name>:latest`` (what docker-compose.yml runs)."""
    client = client or _client()
    tag = ensure_image(recipe, progress, client)
    client.images.get(tag).tag(recipe.name, "latest")
    (progress or (lambda _msg: None))(f"tagged {tag} as {recipe.name}:latest")
    return tag


def main(argv: list[str] | None = None) -> None:
    """``python -m squall.cluster.image [--system NAME] [--tag-latest]``: builds a system's
    node image, prints its tag. ``--tag-latest`` also tags it ``<name>:latest``
    (what the repository's docker-compose.yml runs)."""
    import argparse

    from squall import registry

    parser = argparse.ArgumentParser(
        prog="python -m squall.cluster.image", description=main.__doc__
    )
    parser.add_argument("--system", default="aurora", help="the system whose image to build")
    parser.add_argument(
        "--tag-latest", action="store_true", help="also tag the image <name>:latest"
    )
    args = parser.parse_args(argv)
    recipe = registry.system(args.system).image()
    tag = tag_latest(recipe, print) if args.tag_latest else ensure_image(recipe, print)
    print(tag)


if __name__ == "__main__":
    main()
