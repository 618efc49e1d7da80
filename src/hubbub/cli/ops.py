"""`hubbub config` and `hubbub doctor`: what a process would run with, and whether
everything it names is there.

`config` shows every setting's value and where it came from (a default, an environment
variable, an option), secrets hidden. `doctor` checks the data dir, the event log, the
relational stores and their migrations, Redis, SMTP and the roles, at once and each
within a timeout, and exits 1 when one fails.
"""

from __future__ import annotations

import os
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hubbub.cli.common import State, console, fail, print_json, run
from hubbub.kernel.telemetry import configure_logging
from hubbub.operations import doctor as checkup
from hubbub.operations import effective_settings
from hubbub.operations.effective_settings import EffectiveSetting, IgnoredVariable, InvalidSettings
from hubbub.operations.findings import GIB, Finding, Limits
from hubbub.operations.role_checks import LEGACY, loopback
from hubbub.settings import Settings
from hubbub.supervisor import role_urls

out = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object, for scripts.")]
SOURCE_STYLES: Final = {"default": "dim", "environment": "cyan", "option": "magenta"}
STATUS_MARKS: Final = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "red")}


def _options() -> dict[str, object]:
    """The settings given as options before the command (`hubbub --data-dir X config`)."""
    given = {"data_dir": State.data_dir, "event_log": State.event_log}
    return {name: value for name, value in given.items() if value is not None}


def config(json_output: JsonOption = False) -> None:
    """Show the effective settings and where each came from; secrets are hidden."""
    try:
        settings = effective_settings.load(_options())
    except InvalidSettings as error:
        fail(str(error))
    described = effective_settings.describe(settings, _options(), os.environ)
    ignored = effective_settings.ignored_variables(os.environ)
    if json_output:
        print_json(_config_json(described, ignored))
        return
    out.print(_config_table(described))
    for variable in ignored:
        guess = f" (did you mean {variable.did_you_mean}?)" if variable.did_you_mean else ""
        out.print(Text(f"{variable.variable} is not a setting: ignored{guess}", "yellow"))


def _config_json(
    described: list[EffectiveSetting], ignored: list[IgnoredVariable]
) -> dict[str, object]:
    return {
        "settings": {
            setting.name: {
                "value": setting.value, "source": setting.source,
                "variable": setting.variable, "origin": setting.origin,
            }
            for setting in described
        },
        "ignored": [
            {"variable": v.variable, "did_you_mean": v.did_you_mean} for v in ignored
        ],
    }  # fmt: skip


def _config_table(described: list[EffectiveSetting]) -> Table:
    table = Table("setting", "value", "from", title="Effective settings")
    for setting in described:
        value = setting.value
        shown = (", ".join(map(str, value)) or "(none)") if isinstance(value, list) else str(value)
        table.add_row(
            Text(setting.variable, overflow="fold"),
            Text(
                "(unset)" if value is None else shown,
                "dim" if value is None else "",
                overflow="fold",
            ),
            Text(_source(setting), SOURCE_STYLES[setting.source], overflow="fold"),
        )
    return table


def _source(setting: EffectiveSetting) -> str:
    """Where a setting came from, in words: `default (what it means)`, `environment`
    (with the variable's own spelling when it differs), `option --data-dir`."""
    if setting.source == "option":
        return f"option {setting.origin}"
    if setting.origin and setting.origin != setting.variable:
        return f"{setting.source} ({setting.origin})"
    return setting.source


def doctor(
    json_output: JsonOption = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds each check may take.")] = 2.0,
    min_free_gib: Annotated[
        float, typer.Option(min=0, help="Warn when the data dir's disk has less free (GiB).")
    ] = 1.0,
) -> None:
    """Check every dependency the settings name; exit 1 when one fails."""
    limits = Limits(timeout_s=timeout, min_free_bytes=int(min_free_gib * GIB))
    try:
        settings = effective_settings.load(_options())
    except InvalidSettings as error:
        _report([checkup.settings_finding(error)], json_output)
        raise typer.Exit(1) from None
    configure_logging(settings.log_level, settings.log_format)
    findings = run(_examine(settings, limits, quiet=json_output))
    _report(findings, json_output)
    if not checkup.healthy(findings):
        raise typer.Exit(1)


def _role_urls(settings: Settings) -> dict[str, str]:
    """Where each role answers, as `hubbub serve` starts them, and the legacy app."""
    urls = role_urls(settings, loopback(settings.http_host), settings.http_port)
    if settings.legacy_url:
        urls[LEGACY] = settings.legacy_url
    return urls


async def _examine(settings: Settings, limits: Limits, *, quiet: bool) -> list[Finding]:
    checks = checkup.plan(settings, _role_urls(settings), limits)
    if quiet:
        return await checkup.examine(checks, limits)
    with console.status(f"checking {', '.join(name for name, _ in checks)}"):
        return await checkup.examine(checks, limits)


def _report(findings: list[Finding], json_output: bool) -> None:
    if json_output:
        print_json(
            {
                "ok": checkup.healthy(findings),
                "checks": [
                    {"check": f.check, "status": f.status, "detail": f.detail, "fix": f.fix}
                    for f in findings
                ],
            }
        )
        return
    table = Table("check", "status", "what was found", "what to do", title="Hubbub doctor")
    for finding in findings:
        mark, style = STATUS_MARKS[finding.status]
        table.add_row(
            finding.check,
            Text(mark, style),
            Text(finding.detail, overflow="fold"),
            Text(finding.fix, "dim", overflow="fold"),
        )
    out.print(table)
    failed = sum(finding.status == "fail" for finding in findings)
    warned = sum(finding.status == "warn" for finding in findings)
    warnings = f"{warned} warning{'' if warned == 1 else 's'}"
    verdict = f"{failed} failed, {warnings}" if failed else f"all well, {warnings}"
    out.print(Text(verdict, "red" if failed else "green"))
