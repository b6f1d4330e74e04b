"""`yingji --help`: every subcommand and option says what it does and its default, and every
setting of the Settings class is listed as its YINGJI_* variable."""

from __future__ import annotations

import argparse

import pytest

from libs.common.settings import Settings
from yingji.cli import main, parser

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
