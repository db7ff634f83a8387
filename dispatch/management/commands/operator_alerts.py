"""`manage.py operator_alerts <action>`: where a network operator's alerts go (comms lost,
comms restored, a dispatch issued to a site in comms loss).

``set-webhook`` points an operator's alerts at an HTTPS URL of its own systems (checked
like every webhook callback; ``--bearer-token`` is sent as ``Authorization: Bearer``);
``disable`` stops sending them (the console keeps showing them); ``list`` prints recent
alerts with their delivery; ``deliver`` sends what is due now (the comms check does this
every time it runs). Output is JSON.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dispatch import alerts
from dispatch.models import NetworkOperator
from dispatch.registry import NETWORK_OPERATORS
from vtn.errors import Problem


class Command(BaseCommand):
    help = "Configure the webhook that takes a network operator's alerts; list alerts."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
        hook = sub.add_parser("set-webhook", help="send an operator's alerts to a URL")
        hook.add_argument("--operator", required=True, choices=list(NETWORK_OPERATORS))
        hook.add_argument("--url", required=True)
        hook.add_argument("--bearer-token", default="")
        disable = sub.add_parser("disable", help="stop sending an operator's alerts")
        disable.add_argument("--operator", required=True, choices=list(NETWORK_OPERATORS))
        listing = sub.add_parser("list", help="recent alerts, newest first")
        listing.add_argument("--operator", action="append", default=[],
                             choices=list(NETWORK_OPERATORS))
        listing.add_argument("--limit", type=int, default=50)
        sub.add_parser("deliver", help="send the alerts that are due now")

    def handle(self, *args, action: str, **options) -> None:
        result: dict | list
        try:
            if action == "set-webhook":
                result = alerts.set_webhook(operator=options["operator"], url=options["url"],
                                            bearer_token=options["bearer_token"])
            elif action == "disable":
                result = alerts.set_webhook(operator=options["operator"], url=None)
            elif action == "deliver":
                result = {"delivered": alerts.deliver_due()}
            else:
                codes = options["operator"] or list(NETWORK_OPERATORS)
                result = [alerts.alert_as_dict(row) for row in
                          alerts.visible(codes)[:options["limit"]]]
        except NetworkOperator.DoesNotExist as exc:
            raise CommandError(f"no network operator {options['operator']!r} in the "
                               "registry") from exc
        except Problem as exc:
            raise CommandError(str(exc.detail)) from exc
        self.stdout.write(json.dumps(result, indent=2))
