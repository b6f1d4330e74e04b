"""`yingji --help`: every subcommand and option says what it does and its default, and every
setting of the Settings class is listed as its YINGJI_* variable."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from libs.common.settings import Settings
from yingji.cli import main, parser
from yingji.platform import load_specs

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"YINGJI_[A-Z0-9_]*[A-Z0-9]\b")

pytestmark = pytest.mark.unit


def subparsers(top: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers by name."""
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_setting_is_listed_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert Settings.model_fields
    for name in Settings.model_fields:
        line = next((row for row in shown.splitlines() if f"YINGJI_{name.upper()} " in row), "")
        assert "(default: " in line, f"YINGJI_{name.upper()} is not listed with its default"
    assert "YINGJI_PORT" in shown and "(default: 8000)" in shown


def test_every_subcommand_and_option_has_a_description_and_default() -> None:
    top = parser()
    commands = subparsers(top)
    assert set(commands) >= {"up", "run", "dlq", "drill"}
    helps = {
        choice.dest: choice.help
        for action in top._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
    }
    for name, sub in commands.items():
        assert helps.get(name), f"`yingji {name}` has no description"
        text = sub.format_help()
        assert "YINGJI_DATA_DIR" in text
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            shown = sub._get_formatter()._expand_help(action) if action.help else ""
            assert shown, f"yingji {name} {action.dest}: no help"
            if action.option_strings:
                assert "default" in shown, f"yingji {name} {action.option_strings[0]}: no default"


def test_drill_defaults_to_the_local_port_of_yingji_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YINGJI_PORT", "18123")
    assert parser().parse_args(["drill"]).url == "http://127.0.0.1:18123"
    monkeypatch.delenv("YINGJI_PORT")
    assert parser().parse_args(["drill"]).url == "http://127.0.0.1:8000"


def _settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of the platform and its services (all service modules loaded)."""
    load_specs()
    found, todo = [], list(BaseSettings.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.split(".")[0] in ("libs", "services", "yingji"):
            found.append(cls)
    return found


def variables_read_anywhere() -> set[str]:
    """The YINGJI_* variables of every settings class and every name the code spells out."""
    names = {
        f"{str(cls.model_config.get('env_prefix', '')).upper()}{field.upper()}"
        for cls in _settings_classes()
        for field in cls.model_fields
    }
    for top in ("libs", "services", "yingji"):
        for path in (ROOT / top).rglob("*.py"):
            names |= set(VARIABLE.findall(path.read_text(encoding="utf-8")))
    return names


def test_every_yingji_variable_read_anywhere_is_listed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = {row.split()[0] for row in capsys.readouterr().out.splitlines() if row.strip()}
    read = variables_read_anywhere()
    assert {"YINGJI_UPSTREAM_URL", "YINGJI_INTAKE_CLOCK_SKEW_SECONDS"} <= read
    assert sorted(read - listed) == []


def test_no_setting_is_left_unread() -> None:
    """A setting nothing reads is a promise the platform does not keep (YINGJI_TIMEZONE was)."""
    code = "\n".join(
        path.read_text(encoding="utf-8")
        for top in ("libs", "services", "yingji")
        for path in (ROOT / top).rglob("*.py")
        if path != ROOT / "libs" / "common" / "settings.py"
    )
    own = (ROOT / "libs" / "common" / "settings.py").read_text(encoding="utf-8")
    unread = [
        name
        for name in Settings.model_fields
        if not re.search(rf"settings\.{name}\b", code) and f"self.{name}" not in own
    ]
    assert unread == []
