"""`gliowatch dashboard [--port N]`: the tumour-board dashboard on loopback.

Runs ``streamlit run dashboard/app.py`` bound to 127.0.0.1, headless (no browser opened, no usage
statistics, no file watcher). The app reads the snapshot the pipeline publishes and the users
file ``state_dir/users.toml`` (create users with ``gliowatch users add``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from engine.auth import load_users
from engine.settings import PROJECT_ROOT, Settings

APP_PATH = PROJECT_ROOT / "dashboard" / "app.py"
DEFAULT_PORT = 8501


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dashboard", help="run the tumour-board dashboard on 127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    p.set_defaults(handler=run)


def streamlit_command(*, port: int, app_path: Path = APP_PATH) -> list[str]:
    """The command line that serves the app on loopback only, headless."""
    if not 0 < port < 65536:
        msg = f"Argument 'port' must be in 1..65535, got {port}"
        raise ValueError(msg)
    return [sys.executable, "-m", "streamlit", "run", str(app_path),
            "--server.address", "127.0.0.1", "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
            "--theme.base", "light"]


def dashboard_environment(config: str | None, settings: Settings) -> dict[str, str]:
    """The environment the app's own settings loader reads: same config file, same state dir."""
    env = dict(os.environ)
    if config:
        env["GLIOWATCH_CONFIG"] = str(Path(config).resolve())
    env["GLIOWATCH_STATE_DIR"] = str(settings.state_dir)
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    return env


def start_dashboard(settings: Settings, *, port: int, config: str | None = None,
                    log_path: Path | None = None) -> subprocess.Popen:
    """Start the server in the background (for the demo); the caller stops it."""
    out = log_path.open("ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen(streamlit_command(port=port), env=dashboard_environment(config, settings),
                            cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)


def run(args: argparse.Namespace, settings: Settings) -> int:
    users_path = settings.state_dir / "users.toml"
    if not load_users(users_path):
        print(f"No dashboard users in {users_path}: create one with "
              "`gliowatch users add NAME --role radiologist` (it prints the password).")
    print(f"GlioWatch dashboard: http://127.0.0.1:{args.port}/  (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(streamlit_command(port=args.port),
                               env=dashboard_environment(args.config, settings), cwd=PROJECT_ROOT)
    except KeyboardInterrupt:
        return 130
