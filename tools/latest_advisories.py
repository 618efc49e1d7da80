"""What PyPI says of the installed packages when pip-audit cannot ask it per version.

pip-audit looks each installed version up at `/pypi/NAME/VERSION/json`. Where only the
project pages (`/pypi/NAME/json`) answer, as behind some registry mirrors, this asks
those instead: they list the advisories (from the same OSV data) that affect the
project's newest release. An installed package that is that release, with none listed,
is clean; one that is behind cannot be judged this way and is named, with its newest
version. Exit status: 1 when a package has an advisory or could not be looked up, 2
when only packages behind their newest release are left unjudged, else 0.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import distributions

PYPI = "https://pypi.org/pypi"


def newest(name: str) -> tuple[str, list[str]]:
    """The newest release of `name` and the ids of advisories that affect it."""
    with urllib.request.urlopen(f"{PYPI}/{name}/json", timeout=15) as answer:
        project = json.load(answer)
    return project["info"]["version"], [v["id"] for v in project.get("vulnerabilities", [])]


def main() -> int:
    installed = {d.metadata["Name"]: d.version for d in distributions() if d.metadata["Name"]}
    installed.pop("hubbub", None)
    with ThreadPoolExecutor(16) as pool:
        found = dict(zip(installed, pool.map(_look_up, installed), strict=True))
    status, clean, behind = 0, 0, []
    for name, version in sorted(installed.items(), key=lambda item: item[0].lower()):
        result = found[name]
        if isinstance(result, str):
            print(f"{name} {version}: not looked up ({result})")
            status = 1
        elif result[1]:
            print(f"{name} {version}: advisories on {result[0]}: {', '.join(result[1])}")
            status = 1
        elif version != result[0]:
            behind.append(f"{name} {version} (newest {result[0]})")
        else:
            clean += 1
    print(f"{clean} of {len(installed)} packages are their newest release, with no advisory")
    if behind:
        print("behind their newest release, so not judged here: " + "; ".join(behind))
    return status or (2 if behind else 0)


def _look_up(name: str) -> tuple[str, list[str]] | str:
    try:
        return newest(name)
    except Exception as error:  # a package PyPI does not know, or no answer
        return str(error)


if __name__ == "__main__":
    sys.exit(main())
