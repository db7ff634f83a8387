"""`manage.py login_lockouts <action>`: failed-login delays and lockouts of the console
and the admin (``console.login_throttle``).

``list`` prints the keys delaying or locking logins now (JSON); ``clear`` clears the
counts and locks of an account (``--username``), an address (``--address``), both, or
everything (``--all``), each cleared key written to the security log.
"""

from __future__ import annotations

import getpass
import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from console import login_throttle


class Command(BaseCommand):
    help = "Console and admin login lockouts: list, clear."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
        sub.add_parser("list", help="keys delaying or locking logins now")
        clear = sub.add_parser("clear", help="clear an account's or address's lockout")
        clear.add_argument("--username", default="")
        clear.add_argument("--address", default="")
        clear.add_argument("--all", action="store_true", help="clear every key")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            result: list[dict] | dict = [{"key": row.key, "failures": row.failures,
                       "last_failure": row.last_failure.isoformat(),
                       "locked_until": row.locked_until.isoformat()
                       if row.locked_until else None}
                      for row in login_throttle.current()]
        else:
            username, address = options["username"], options["address"]
            if not (username or address or options["all"]):
                raise CommandError("give --username, --address or --all")
            if options["all"] and (username or address):
                raise CommandError("--all clears everything: give it alone")
            result = {"cleared": login_throttle.clear(
                username=username, address=address, by=f"manage.py:{getpass.getuser()}")}
        self.stdout.write(json.dumps(result, indent=2))
