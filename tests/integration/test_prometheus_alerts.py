"""The alerting rules on the real Prometheus (Debian's, `make prometheus`): roles served as
real processes, scraped through the deployment's own scrape config and rules (with
short intervals and `for` durations); a role killed with SIGKILL is `HubbubRoleDown`
firing for that role, and for no other. The Grafana dashboard's queries run there too.

The roles run as `hubbub serve --role NAME` each, without the supervisor (which would
start the killed role again at once): the same commands `hubbub serve` starts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from hubbub.settings import Settings
from hubbub.supervisor import platform_roles
from tests.conftest import service_missing
from tests.support.net import free_port

DEPLOY = Path(__file__).parents[2] / "deploy" / "prometheus"
DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "hubbub.json"
ROLES = ("gateway", "ingest", "mentions", "web")
"""The roles started: the gateway (its scrape needs the operator's token, and it exports
the consumers' positions), two that serve the platform's API, and the web app's."""
KILLED = "ingest"
ABSENT = ("analytics", "publishing", "notifications", "listening")
"""Not started (two cores): the gateway is pointed at ports nothing listens on."""
QUICK_FOR = "6s"
"""Every rule's `for` in the test: three scrapes, so a slow scrape or two of a busy role
(two cores, shared) does not fire its alert."""
T = TypeVar("T")


def test_a_role_killed_is_reported_down_by_prometheus_and_no_other(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus") or service_missing(
        "prometheus is not installed (`make prometheus` installs Debian's)"
    )
    ports = {role: free_port() for role in (*ROLES, *ABSENT)}
    token = f"operator-{secrets.token_hex(8)}"
    with ExitStack() as stack:
        roles = stack.enter_context(serving(tmp_path, ports, token))
        api = stack.enter_context(prometheus_on(prometheus, tmp_path, ports, token))
        every_job = {f"hubbub-{role}" for role in ROLES}
        up = poll(lambda: jobs_up(api) == every_job, 90, roles)
        assert up, (
            f"up: {sorted(jobs_up(api))}, not every role's job (the gateway's with the"
            f" operator's token):\n{tail(tmp_path / 'roles.log')}"
        )
        assert poll(lambda: rules_healthy(api), 20, roles), "not every rule was evaluated"
        assert_new_series_reach_prometheus(api)
        assert_dashboard_queries_run(api)
        # A role slower to start than QUICK_FOR was down for a while: its alert is over once
        # a rule evaluation has seen it up.
        quiet = poll(lambda: not roles_down(api, ("pending", "firing")), 30, roles)
        assert quiet, f"roles down before any was killed: {roles_down(api, ('firing',))}"

        roles[KILLED].kill()
        firing = poll(lambda: roles_down(api, ("firing",)) or None, 30, roles)

    assert firing is not None, f"HubbubRoleDown did not fire for {KILLED} within 30 s"
    assert [alert["labels"]["role"] for alert in firing] == [KILLED]
    labels, annotations = firing[0]["labels"], firing[0]["annotations"]
    assert labels["severity"] == "critical"
    assert labels["job"] == f"hubbub-{KILLED}"
    assert labels["instance"] == f"127.0.0.1:{ports[KILLED]}"
    assert labels["host"] == "127.0.0.1"
    assert annotations["runbook_url"] == "docs/OPERATIONS.md#hubbubroledown"
    assert annotations["summary"] == f"The {KILLED} role on 127.0.0.1:{ports[KILLED]} is down"


def assert_new_series_reach_prometheus(api: httpx.Client) -> None:
    """The series the alerts added for them arrive with the labels the rules group by."""
    disk = query(api, "hubbub_data_dir_free_bytes")
    assert {series["metric"]["role"] for series in disk} == set(ROLES) - {"web"}
    assert all(series["metric"]["host"] == "127.0.0.1" for series in disk)
    assert all(float(series["value"][1]) > 0 for series in disk)
    mentions = poll(lambda: query(api, 'hubbub_consumer_position{consumer="mentions"}'), 20)
    assert mentions, "the gateway exports the position the mentions role said it had folded"
    assert query(api, 'process_resident_memory_bytes{job="hubbub-web"}')


def assert_dashboard_queries_run(api: httpx.Client) -> None:
    """Every query of the dashboard evaluates on the scraped roles' series (Grafana's
    interval variables as Grafana would fill them in)."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for row in dashboard["panels"] for p in (row, *row.get("panels", []))]
    for panel in panels:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m")
            answer = api.get("/api/v1/query", params={"query": expr})
            assert answer.status_code == 200, f"{panel['title']}: {answer.text}"
    some = query(api, 'sum by (role) (process_resident_memory_bytes{job=~"hubbub-.+"})')
    assert {series["metric"]["role"] for series in some} == set(ROLES)


@contextmanager
def serving(
    tmp_path: Path, ports: dict[str, int], token: str
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """`hubbub serve --role NAME` for each of ROLES, on `ports`; every process is stopped
    (SIGKILL after a grace) when the block ends."""
    urls = {f"{role}_url": f"http://127.0.0.1:{ports[role]}" for role in ports if role != "gateway"}
    settings = Settings(data_dir=tmp_path / "data", http_port=ports["gateway"], **urls)
    environment = {
        "HUBBUB_LOG_LEVEL": "warning",
        "HUBBUB_ADMIN_TOKEN": token,
        "HUBBUB_HTTP_PORT": str(ports["gateway"]),
        **{f"HUBBUB_{name.upper()}": url for name, url in urls.items()},
    }
    output = (tmp_path / "roles.log").open("ab")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for spec in platform_roles(settings, roles=ROLES):
            env = {**(spec.env or os.environ), **environment}
            processes[spec.name] = subprocess.Popen(
                spec.argv, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        yield processes
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            stop(process)
        output.close()


@contextmanager
def prometheus_on(
    binary: str, tmp_path: Path, ports: dict[str, int], token: str
) -> Iterator[httpx.Client]:
    """The real Prometheus, with the deployment's scrape config and rules made quick
    (2 s scrapes, 1 s evaluations, every `for` QUICK_FOR) and pointed at `ports`; yields a
    client of its HTTP API."""
    here = tmp_path / "prometheus"
    here.mkdir()
    (here / "operator-token").write_text(token)
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = QUICK_FOR
    (here / "alerts.yml").write_text(yaml.safe_dump(rules))
    config = quick_config(yaml.safe_load((DEPLOY / "prometheus.yml").read_text()), ports, here)
    (here / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary, f"--config.file={here / 'prometheus.yml'}",
        f"--storage.tsdb.path={here / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]  # fmt: skip
    with (here / "prometheus.log").open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:
            ready = poll(lambda: answers(api, "/-/ready"), 20)
            log = (here / "prometheus.log").read_text()
            assert ready, f"prometheus did not start:\n{log}"
            yield api
    finally:
        process.terminate()
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Wait for a process sent SIGTERM; SIGKILL it after a grace."""
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def quick_config(config: dict[str, Any], ports: dict[str, int], here: Path) -> dict[str, Any]:
    """The scrape config, every 2 s, for the roles of ROLES only, each at its port."""
    config["global"].update(scrape_interval="2s", scrape_timeout="2s", evaluation_interval="1s")
    config["rule_files"] = [str(here / "alerts.yml")]
    jobs = []
    for job in config["scrape_configs"]:
        (target,) = job["static_configs"]
        role = target["labels"]["role"]
        if role not in ROLES:
            continue
        target["targets"] = [f"127.0.0.1:{ports[role]}"]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(here / "operator-token")
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


def query(api: httpx.Client, promql: str) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/query", params={"query": promql})
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def jobs_up(api: httpx.Client) -> set[str]:
    return {series["metric"]["job"] for series in query(api, "up == 1")}


def rules_healthy(api: httpx.Client) -> bool:
    """Every rule of alerts.yml loaded and evaluated at least once; one that fails to
    evaluate fails the test."""
    shipped = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    groups = api.get("/api/v1/rules").json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    failing = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] == "err"]
    assert not failing, f"rules failing: {failing}"
    expected = sum(len(group["rules"]) for group in shipped)
    return len(rules) == expected and all(rule["health"] == "ok" for rule in rules)


def roles_down(api: httpx.Client, states: tuple[str, ...]) -> list[dict[str, Any]]:
    """The HubbubRoleDown alerts in one of `states` (pending, firing) now."""
    alerts = api.get("/api/v1/alerts").json()["data"]["alerts"]
    return [
        alert
        for alert in alerts
        if alert["labels"]["alertname"] == "HubbubRoleDown" and alert["state"] in states
    ]


def answers(api: httpx.Client, path: str) -> bool:
    try:
        return api.get(path).status_code == 200
    except httpx.HTTPError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def poll(
    check: Callable[[], T],
    timeout_s: float,
    roles: dict[str, subprocess.Popen[bytes]] | None = None,
) -> T | None:
    """`check()` once it is truthy, polling every 0.2 s; None after `timeout_s`. With
    `roles`, a role process that exits meanwhile (but the one killed on purpose) fails
    the test at once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if found := check():
                return found
        except httpx.HTTPError:
            pass
        for name, process in (roles or {}).items():
            assert name == KILLED or process.poll() is None, f"{name} exited: {process.returncode}"
        time.sleep(0.2)
    return None
