"""The web app's JS and CSS: the vendored libraries are the npm releases the manifest
names (by checksum, with their licences), nothing is loaded from another site, and a
page's assets stay within their budget (150 KB compressed)."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from importlib import resources
from pathlib import Path

UI = Path(str(resources.files("hubbub.ui")))
VENDOR = UI / "static" / "vendor"
BUDGET_KB = 150


def test_every_vendored_file_is_the_release_the_manifest_names() -> None:
    manifest = json.loads((VENDOR / "manifest.json").read_text())
    served = {p.name for p in VENDOR.iterdir()} - {"manifest.json"}
    licences = {entry["license_file"] for entry in manifest.values()}
    assert served == set(manifest) | licences  # nothing unaccounted for
    for name, entry in manifest.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == entry["sha256"], name
        assert entry["license"]
        assert (VENDOR / entry["license_file"]).read_text().strip()


def test_no_page_loads_anything_from_another_site() -> None:
    for template in (UI / "templates").glob("*.html"):
        text = template.read_text()
        for url in re.findall(r'(?:src|href|action)="([^"]+)"', text):
            assert url.startswith(("/", "#", "{{")), f"{template.name}: {url}"
    for asset in (UI / "static").glob("*.*"):
        assert not re.search(r"https?://", asset.read_text()), asset.name


def test_the_assets_of_a_page_fit_the_budget() -> None:
    base = (UI / "templates" / "base.html").read_text()
    used = re.findall(r'(?:src|href)="/static/([^"]+)"', base)
    assert used  # the base page names its assets
    compressed = sum(len(gzip.compress((UI / "static" / p).read_bytes(), 9)) for p in used)
    assert compressed <= BUDGET_KB * 1024, f"{compressed / 1024:.1f} KB"
