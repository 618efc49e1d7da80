"""Copy the web app's JavaScript and CSS libraries into the package, from their npm releases.

`make vendor` runs this. Each library is fetched at the pinned version with `npm pack`
(from the npm registry, which npm verifies against the release's integrity hash), and
the files the web app serves are copied, with the library's licence, into
`src/hubbub/ui/static/vendor/`. `manifest.json` there records, for each file, the
package, version, licence and SHA-256; the test suite checks the files against it, so a
file changed by hand fails the build. Nothing is loaded from a CDN at run time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "src" / "hubbub" / "ui" / "static" / "vendor"

# (npm package, version, file in the package, name served, the package's licence file)
LIBRARIES = [
    ("htmx.org", "2.0.11", "dist/htmx.min.js", "htmx.min.js", "LICENSE"),
    ("htmx-ext-sse", "2.2.4", "dist/sse.min.js", "htmx-sse.min.js", "LICENSE"),
    ("uplot", "1.6.32", "dist/uPlot.iife.min.js", "uplot.min.js", "LICENSE"),
    ("uplot", "1.6.32", "dist/uPlot.min.css", "uplot.min.css", "LICENSE"),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(package: str, version: str, into: Path) -> Path:
    """The unpacked npm release of `package@version`."""
    subprocess.run(
        ["npm", "pack", "--silent", f"{package}@{version}"], cwd=into, check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    (tarball,) = into.glob(f"{package.replace('@', '').replace('/', '-')}-{version}.tgz")
    unpacked = into / f"{package}-{version}"
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")
    return unpacked / "package"


def main() -> int:
    if shutil.which("npm") is None:
        print("npm is needed: it fetches the libraries from the npm registry", file=sys.stderr)
        return 1
    VENDOR.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fetched: dict[tuple[str, str], Path] = {}
        for package, version, source, served, licence in LIBRARIES:
            if (package, version) not in fetched:
                fetched[package, version] = fetch(package, version, Path(tmp))
            root = fetched[package, version]
            shutil.copyfile(root / source, VENDOR / served)
            licence_name = f"{package}.LICENSE.txt"
            shutil.copyfile(root / licence, VENDOR / licence_name)
            # The licence the package declares, else its licence file's first line.
            declared = (
                json.loads((root / "package.json").read_text()).get("license")
                or ((root / licence).read_text().strip().splitlines()[0])
            )
            manifest[served] = {
                "package": package,
                "version": version,
                "file": source,
                "license": declared,
                "license_file": licence_name,
                "sha256": sha256(VENDOR / served),
            }
            print(f"{served}: {package}@{version} ({declared})")
    (VENDOR / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
