"""`hubbub flags`, as an operator rolls a feature out, kills it and removes it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hubbub.cli import app


def hubbub(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), *args])
    return result.exit_code, result.output


def test_a_platform_flag_is_set_listed_checked_killed_and_removed(tmp_path: Path) -> None:
    code, said = hubbub(
        tmp_path, "flags", "set", "new-composer", "--percent", "100", "--deny", "globex",
        "--description", "the new composer",
    )  # fmt: skip
    assert code == 0, said
    assert "flag new-composer set in platform: 100%" in said

    code, listed = hubbub(tmp_path, "flags", "list", "--json")
    assert json.loads(listed) == [{
        "name": "new-composer", "scope": "platform", "enabled": True, "percent": 100.0,
        "allow": [], "deny": ["globex"], "description": "the new composer",
    }]  # fmt: skip
    code, table = hubbub(tmp_path, "flags", "list")
    assert "new-composer" in table

    code, checked = hubbub(tmp_path, "flags", "check", "new-composer", "--tenant", "acme")
    assert (code, checked.strip()) == (0, "new-composer: on (SPLIT, platform flag)")
    code, checked = hubbub(tmp_path, "flags", "check", "new-composer", "--tenant", "globex")
    assert checked.strip() == "new-composer: off (TARGETING_MATCH, platform flag)"

    code, said = hubbub(tmp_path, "flags", "set", "new-composer", "--kill")
    assert "killed" in said
    code, checked = hubbub(tmp_path, "flags", "check", "new-composer", "--tenant", "acme")
    assert checked.strip() == "new-composer: off (DISABLED, platform flag)"
    code, said = hubbub(tmp_path, "flags", "set", "new-composer", "--enable")
    assert "100%" in said  # the kill switch kept the rollout where it was

    code, said = hubbub(tmp_path, "flags", "remove", "new-composer")
    assert (code, said.strip()) == (0, "flag new-composer removed from platform")
    code, checked = hubbub(tmp_path, "flags", "check", "new-composer", "--tenant", "acme")
    assert code != 0
    assert "no flag 'new-composer'" in checked
    code, listed = hubbub(tmp_path, "flags", "list")
    assert "no flags" in listed


def test_a_tenant_flag_is_its_own_and_wins_for_it(tmp_path: Path) -> None:
    hubbub(tmp_path, "flags", "set", "dark-mode", "--percent", "100")
    code, said = hubbub(
        tmp_path, "flags", "set", "dark-mode", "--tenant", "acme", "--allow", "user-1"
    )
    assert code == 0, said
    code, listed = hubbub(tmp_path, "flags", "list", "--tenant", "acme", "--json")
    assert [(f["name"], f["scope"], f["allow"]) for f in json.loads(listed)] == [
        ("dark-mode", "acme", ["user-1"])
    ]

    def check(*args: str) -> str:
        return hubbub(tmp_path, "flags", "check", "dark-mode", *args)[1].strip()

    assert check("--tenant", "acme", "--subject", "user-1") == (
        "dark-mode: on (TARGETING_MATCH, tenant acme flag)"
    )
    assert check("--tenant", "acme", "--subject", "user-2") == (
        "dark-mode: off (SPLIT, tenant acme flag)"
    )
    assert check("--tenant", "globex") == "dark-mode: on (SPLIT, platform flag)"

    code, said = hubbub(tmp_path, "flags", "remove", "dark-mode", "--tenant", "globex")
    assert code != 0
    assert "no flag 'dark-mode' in tenant globex" in said


def test_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    code, said = hubbub(tmp_path, "flags", "set", "Dark Mode")
    assert code != 0
    assert "invalid flag name" in said
    code, said = hubbub(tmp_path, "flags", "set", "dark-mode", "--percent", "120")
    assert code != 0
    assert "invalid percent" in said
    assert "no flags" in hubbub(tmp_path, "flags", "list")[1]
