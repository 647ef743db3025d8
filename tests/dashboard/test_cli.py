"""`gliowatch dashboard`: the streamlit command line binds loopback and runs headless."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engine.settings import Settings
from flows import cmd_dashboard


def test_command_binds_loopback_headless() -> None:
    command = cmd_dashboard.streamlit_command(port=8765)
    pairs = dict(zip(command[5::2], command[6::2], strict=True))
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("dashboard/app.py")
    assert pairs["--server.address"] == "127.0.0.1"
    assert pairs["--server.port"] == "8765"
    assert pairs["--server.headless"] == "true"
    assert pairs["--browser.gatherUsageStats"] == "false"


def test_bad_port_refused() -> None:
    with pytest.raises(ValueError, match="Argument 'port'"):
        cmd_dashboard.streamlit_command(port=70000)


def test_environment_carries_config_and_state_dir(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    env = cmd_dashboard.dashboard_environment(str(config), Settings(state_dir=tmp_path / "state"))
    assert env["GLIOWATCH_CONFIG"] == str(config.resolve())
    assert env["GLIOWATCH_STATE_DIR"] == str(tmp_path / "state")


def test_parser_default_port() -> None:
    parser = argparse.ArgumentParser()
    cmd_dashboard.add_parser(parser.add_subparsers())
    args = parser.parse_args(["dashboard"])
    assert args.port == cmd_dashboard.DEFAULT_PORT and args.handler is cmd_dashboard.run
