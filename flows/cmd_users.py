"""`gliowatch users add NAME --role R` / `gliowatch users list`: the dashboard's local users file."""

from __future__ import annotations

import argparse
import sys

from engine.auth import Role, add_user, load_users
from engine.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("users", help="dashboard users (local file with bcrypt hashes)")
    sub = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add a user; prints a generated password unless --password-stdin")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--force", action="store_true", help="replace an existing user")
    sub.add_parser("list", help="list users and roles")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.state_dir / "users.toml"
    if args.users_command == "list":
        for user in sorted(load_users(path).values(), key=lambda u: u.name):
            print(f"{user.name}\t{user.role.value}")
        return 0
    given = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    try:
        password = add_user(path, name=args.name, role=args.role, password=given, force=args.force)
    except ValueError as exc:
        print(f"gliowatch: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.name} ({args.role}) written to {path}")
    if given is None:
        print(f"password: {password}")
    return 0
