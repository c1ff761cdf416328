"""The command-line body of `vaultserver user add | list | passwd | disable` (cli.py holds the dispatch).

`user add NAME --guest [--expires YYYY-MM-DD] --password-stdin`, or `--member` (the default) or `--admin`:
the three roles are one choice. Passwords are read from standard input, never from the command line, where
other users of the machine could see them.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from vaultserver.errors import ValidationError, VaultError
from vaultserver.services import Services
from vaultserver.services.account_expiry import expiry_date
from vaultserver.services.users import UserView

ACTOR = "owner (cli)"


def _expires(text: str) -> date:
    """`--expires`: a calendar date, refused at once (a usage error) when it is not one."""
    try:
        return expiry_date(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    user = sub.add_parser("user", help="add, list, change or disable accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create an account (password read from stdin)")
    add.add_argument("name")
    role = add.add_mutually_exclusive_group()
    role.add_argument("--admin", dest="role", action="store_const", const="admin",
                      help="an administrator (the owner)")
    role.add_argument("--member", dest="role", action="store_const", const="member",
                      help="family: sees the whole library (the default)")
    role.add_argument("--guest", dest="role", action="store_const", const="guest",
                      help="sees only the albums shared with them; manages nothing")
    add.add_argument("--expires", type=_expires, metavar="YYYY-MM-DD",
                     help="the account stops as this day begins (guests and members only)")
    add.add_argument("--password-stdin", action="store_true", required=True)
    user_sub.add_parser("list", help="list accounts: role, state, expiry, last sign-in")
    passwd = user_sub.add_parser("passwd", help="set a new password (read from stdin)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", required=True)
    disable = user_sub.add_parser("disable", help="disable an account and sign it out everywhere")
    disable.add_argument("name")


def _password_from_stdin() -> str:
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise VaultError("Give the password on standard input (--password-stdin)", code="VALIDATION_001")
    return password


def cmd_user(args: argparse.Namespace, services: Services) -> int:
    users = services.users
    if args.user_command == "add":
        role = args.role or "member"
        if args.expires is not None and role == "admin":
            raise VaultError("An administrator's account cannot expire: --expires goes with --guest or "
                             "--member", code="VALIDATION_001")
        user = users.create(args.name, _password_from_stdin(), role, ACTOR, expires_at=args.expires)
        until = f", until {user.expires_on:%Y-%m-%d}" if user.expires_on else ""
        print(f"Created {user.role} {user.username}{until}")
    elif args.user_command == "list":
        for user in users.list():
            print(_line(user))
    elif args.user_command == "passwd":
        user = users.by_name(args.name)
        users.update(user.id, password=_password_from_stdin(), actor=ACTOR)
        ended = services.sessions.revoke_all_for_user(user.id, "password_changed")
        print(f"Password changed for {user.username}; {ended} session(s) signed out")
    elif args.user_command == "disable":
        user = users.by_name(args.name)
        users.update(user.id, is_active=False, actor=ACTOR)
        ended = services.sessions.revoke_all_for_user(user.id, "account_disabled")
        print(f"Disabled {user.username}; {ended} session(s) signed out")
    return 0


def _line(user: UserView) -> str:
    state = "disabled" if not user.is_active else "expired" if user.expired() else "active"
    expiry = f"expires {user.expires_on:%Y-%m-%d}" if user.expires_on else "no expiry"
    return (f"{user.username:24} {user.role:7} {state:8} {expiry:18} "
            f"last sign-in {user.last_login_at or 'never'}")
