"""``python manage.py settle --month YYYY-MM [--operator OP] [--fsp NAME] [--contract ID]
[--issue]``: compute the month's statements now and print them as JSON (a progress bar
on stderr when it is a terminal)."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from settlement import inputs, services
from settlement.api.serializers import StatementDocumentSerializer
from vtn.errors import Problem


class Command(BaseCommand):
    help = "Compute (or refresh) settlement statements for a month; print them as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--month", required=True, help="YYYY-MM (Europe/London month)")
        parser.add_argument("--operator", help="network operator code")
        parser.add_argument("--fsp", help="FSP identifier")
        parser.add_argument("--contract", help="contract identifier")
        parser.add_argument("--issue", action="store_true",
                            help="issue each resulting draft to its FSP")

    def handle(self, *args, **options) -> None:
        try:
            month = services.Month.parse(options["month"])
        except Problem as exc:
            raise CommandError(exc.detail) from exc
        chosen = inputs.contracts(operator=options["operator"] or "",
                                  fsp=options["fsp"] or "",
                                  contract=options["contract"] or "")
        if not chosen:
            raise CommandError("no contract matches")
        tty = sys.stderr.isatty()
        results = []
        for index, contract in enumerate(chosen, start=1):
            row = services.settle_month(contract=contract, month=month)
            if options["issue"] and row.status == row.Status.DRAFT:
                row = services.issue(statement_id=row.pk)
            results.append(StatementDocumentSerializer(row).data)
            if tty:
                done = int(30 * index / len(chosen))
                sys.stderr.write(f"\r[{'#' * done}{'.' * (30 - done)}] {index}/{len(chosen)}"
                                 f" {contract.operator.code}/{contract.identifier}")
                sys.stderr.flush()
        if tty:
            sys.stderr.write("\n")
        self.stdout.write(json.dumps(results, indent=2, sort_keys=True))
