"""The monitoring files under deploy/: the Grafana dashboard and the Prometheus alerts
query only series the platform exports (its processes' registry, as served at /metrics),
and parse as PromQL; every alert is labelled, has its runbook and a promtool test; the
scrape config finds every role on its default port."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from hubbub.kernel.telemetry import DATA_DIR
from hubbub.settings import Settings
from hubbub.supervisor import PLATFORM_ROLES, url_port
from tests.conftest import service_missing

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "hubbub.json"
PROMETHEUS = DEPLOY / "prometheus"
SERVED = (
    "hubbub.cli.serve", "hubbub.gateway.app", "hubbub.gateway.worker", "hubbub.ingest.worker",
    "hubbub.mentions.worker", "hubbub.analytics.worker", "hubbub.publishing.worker",
    "hubbub.notifications.worker", "hubbub.listening.worker", "hubbub.ui.api",
)  # fmt: skip
"""What the roles' processes run: each role's app and worker, which define its metrics."""
PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "bool", "offset", "inf", "nan"}
)  # fmt: skip
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The names of every series a role's /metrics can hold: the registry of a process
    that imported what the roles run (the data dir measured, as `hubbub serve` does), plus
    the series Prometheus adds to every target."""
    for module in SERVED:
        importlib.import_module(module)
    DATA_DIR.watch(tmp_path_factory.mktemp("data"))
    names = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def metric_names(promql: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's variables taken out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', promql)
    text = re.sub(r"\$\{?\w+\}?", "5m", text)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for word in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        follows = text[word.end() :].lstrip()
        if not follows.startswith("(") and word.group().lower() not in PROMQL_WORDS:
            names.add(word.group())
    return names


def test_metric_names_are_read_out_of_promql() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (role, le) (rate(hubbub_http_request_seconds_bucket"
        '{job=~"hubbub-.+", status="5xx"}[$__rate_interval]))) / on (topic) group_left ()'
        " clamp_min(up offset 5m, 1e9) > bool 0.5 and absent(process_open_fds)"
    )
    assert metric_names(expr) == {"hubbub_http_request_seconds_bucket", "up", "process_open_fds"}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_every_panel_queries_series_the_platform_exports(exported: set[str]) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    unknown = {
        (title, name)
        for title, expr in queries
        for name in metric_names(expr)
        if name not in exported
    }
    assert not unknown, f"panels query series no role exports: {sorted(unknown)}"


def test_every_alert_queries_series_the_platform_exports(exported: set[str]) -> None:
    unknown = {
        (rule["alert"], name)
        for rule in alert_rules()
        for name in metric_names(rule["expr"])
        if name not in exported
    }
    assert not unknown, f"alerts query series no role exports: {sorted(unknown)}"


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == ["Throughput", "Lag", "Latency", "Errors", "Dead letters",
                    "Publishing and notifications", "Resources"]  # fmt: skip
    queried = {name for _, expr in dashboard_queries() for name in metric_names(expr)}
    assert {
        "hubbub_ingest_events_total", "hubbub_consumer_lag_events",
        "hubbub_http_request_seconds_bucket", "hubbub_http_requests_total",
        "hubbub_eventlog_head_position", "hubbub_publish_jobs_total",
        "process_resident_memory_bytes", "hubbub_data_dir_free_bytes",
    } <= queried  # fmt: skip


def test_the_dashboard_takes_its_prometheus_as_a_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 41
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    chosen = {"type": "prometheus", "uid": f"${{{variable['name']}}}"}
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == chosen, panel["title"]
        assert all(target["datasource"] == chosen for target in panel["targets"]), panel["title"]
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_the_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels(json.loads(DASHBOARD.read_text())):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_panel_query_is_promql(tmp_path: Path) -> None:
    """promtool parses each query, as a recording rule (Grafana's intervals made 5m)."""
    promtool = shutil.which("promtool") or service_missing(
        "promtool is not installed (`make prometheus` installs Debian's)"
    )
    records = [
        {"record": f"hubbub:panel_{n}", "expr": re.sub(r"\$\{?\w+\}?", "5m", expr)}
        for n, (_, expr) in enumerate(dashboard_queries())
    ]
    rules = tmp_path / "panels.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": records}]}))
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_every_alert_is_labelled_has_a_runbook_and_a_promtool_test() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    rules = alert_rules()
    assert len(rules) == 12
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations["summary"], name
        assert annotations["description"], name
        assert annotations["runbook_url"] == f"docs/OPERATIONS.md#{name.lower()}"
        assert name in tested, f"{name} has no firing case in alerts_test.yml"


def test_the_scrape_config_finds_every_role_on_its_default_port() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    defaults = Settings.model_fields
    expected = {
        role: defaults["http_port"].default
        if role == "gateway"
        else url_port(defaults[f"{role}_url"].default)
        for role in PLATFORM_ROLES
    }
    found = {}
    for job in config["scrape_configs"]:
        (target,) = job["static_configs"]
        role = target["labels"]["role"]
        assert job["job_name"] == f"hubbub-{role}"
        (address,) = target["targets"]
        found[role] = int(address.rsplit(":", 1)[1])
        assert ("authorization" in job) == (role == "gateway"), "only the gateway's is guarded"
    assert found == expected
