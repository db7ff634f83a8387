"""`manage.py dispatch <action>`: issue, revise, stop and show dispatches, export a
dispatch's audit trail, rotate keys, require (or not) signed reports.

Every action prints JSON. A dispatch is named by its NO dispatch reference (with
``--operator`` when two operators use the same reference).
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dispatch import audit, comms, issuing, programs, report_signatures, selectors, signing_keys
from dispatch.api.serializers import DispatchHistorySerializer, SiteSerializer
from dispatch.management.commands._common import decimal, dumps, iso_datetime, problem_error
from dispatch.rules import URGENCIES, Timing
from vtn.errors import Problem


class Command(BaseCommand):
    help = "Issue, revise, stop and show GB flexibility dispatches; rotate signing keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
        issue = sub.add_parser("issue", help="issue a dispatch (revision 1)")
        issue.add_argument("--unit", required=True, help="unit reference, or FSP/REF")
        issue.add_argument("--fsp", default=None)
        issue.add_argument("--operator", default=None)
        issue.add_argument("--product", required=True)
        issue.add_argument("--contract", default=None)
        issue.add_argument("--ref", default=None, help="NO dispatch reference (default: generated)")
        issue.add_argument("--start", required=True, type=iso_datetime)
        issue.add_argument("--end", required=True, type=iso_datetime)
        issue.add_argument("--status", choices=["pre-notify", "run"], default="run")
        self._add_setpoint_options(issue, required=True)

        revise = sub.add_parser("revise", help="a new revision; what is not given carries over")
        revise.add_argument("ref")
        revise.add_argument("--operator", default=None)
        revise.add_argument("--start", type=iso_datetime, default=None)
        revise.add_argument("--end", type=iso_datetime, default=None)
        revise.add_argument("--status", choices=["pre-notify", "run"], default=None)
        self._add_setpoint_options(revise, required=False)

        stop = sub.add_parser("stop", help="stop a dispatch (a final revision)")
        stop.add_argument("ref")
        stop.add_argument("--operator", default=None)
        stop.add_argument("--emergency", action="store_true", help="emergency stop")
        stop.add_argument("--reason", default="")

        show = sub.add_parser("show", help="a dispatch with its full revision history")
        show.add_argument("ref")
        show.add_argument("--operator", default=None)

        export = sub.add_parser("audit-export", help="write a dispatch's audit export (verify "
                                "it with `gbflex-audit verify FILE`)")
        export.add_argument("ref")
        export.add_argument("--operator", default=None)
        export.add_argument("--out", required=True, help="file to write the JSON export to")

        comms = sub.add_parser("comms", help="sites' last-seen times and comms states")
        comms.add_argument("--check", action="store_true",
                           help="first mark sites comms lost or restored (as the beat task)")

        rotate = sub.add_parser("rotate-key", help="rotate an operator's signing key")
        rotate.add_argument("--operator", required=True)

        signed = sub.add_parser(
            "signed-reports", help="show or set whether the operator's sites with a "
            "registered key must sign availability and meter-reading reports")
        signed.add_argument("--operator", required=True)
        rule = signed.add_mutually_exclusive_group()
        rule.add_argument("--require", action="store_const", const=True, dest="required",
                          help="refuse unsigned reports from sites with a key (the default)")
        rule.add_argument("--allow-unsigned", action="store_const", const=False,
                          dest="required", help="accept unsigned reports (transition period)")
        signed.add_argument("--reason", default="")

    @staticmethod
    def _add_setpoint_options(parser: CommandParser, *, required: bool) -> None:
        volume = parser.add_mutually_exclusive_group(required=required)
        volume.add_argument("--kw", type=decimal, default=None,
                            help="real power: volume in kW from the service start")
        volume.add_argument("--kvar", type=decimal, default=None,
                            help="reactive power: volume in kVAr from the service start "
                                 "(--setpoint values are then kVAr too)")
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--absolute", action="store_const", const="absolute",
                          dest="setpoint_type", help="absolute setpoint")
        kind.add_argument("--delta", action="store_const", const="delta", dest="setpoint_type",
                          help="delta to baseline (default: the product's first type)")
        parser.add_argument("--setpoint", action="append", default=[], metavar="ISO8601=VOLUME",
                            help="further setpoint (repeatable), e.g. 2026-01-05T17:30Z=120")
        parser.add_argument("--price", type=decimal, default=None,
                            help="GBP per kWh (with --kvar: per kVArh), paid as instructed")
        parser.add_argument("--urgency", choices=list(URGENCIES), default=None)
        parser.add_argument("--reason", default="")

    def handle(self, *args, action: str, **options) -> None:
        try:
            result = getattr(self, f"_{action.replace('-', '_')}")(**options)
        except Problem as exc:
            raise problem_error(exc) from exc
        self.stdout.write(dumps(result))

    @staticmethod
    def _timings(options: dict, start, setpoint_type: str) -> list[Timing] | None:
        points = []
        reactive = options.get("kvar") is not None
        first = options["kvar"] if reactive else options["kw"]
        if first is not None:
            points.append((start, first))
        for text in options["setpoint"]:
            when, _, value = text.rpartition("=")
            if not when:
                raise CommandError(f"--setpoint {text!r} must be ISO8601=VOLUME")
            try:
                points.append((iso_datetime(when), decimal(value)))
            except Exception as exc:
                raise CommandError(f"--setpoint {text!r}: {exc}") from exc
        if not points:
            return None
        return [Timing(setpoint_time=when, volume=volume, setpoint_type=setpoint_type,
                       service_type="reactive" if reactive else "real",
                       price_gbp_per_kwh=options["price"])
                for when, volume in sorted(points, key=lambda p: p[0])]

    def _issue(self, **options) -> dict:
        unit = selectors.find_unit(options["unit"], fsp=options["fsp"],
                                   operator=options["operator"])
        product = programs.find_product(options["product"])
        setpoint_type = options["setpoint_type"] or product.setpoint_types[0]
        dispatch = issuing.issue_dispatch(
            unit=unit, product=product, contract=options["contract"], reference=options["ref"],
            service_start=options["start"], service_end=options["end"],
            status=options["status"], urgency=options["urgency"],
            timings=self._timings(options, options["start"], setpoint_type) or [],
            issued_by="cli", reason=options["reason"])
        return DispatchHistorySerializer(dispatch).data

    def _revise(self, **options) -> dict:
        dispatch = selectors.find_dispatch(options["ref"], operator=options["operator"])
        setpoint_type = options["setpoint_type"] or dispatch.contract.product.setpoint_types[0]
        start = options["start"] or dispatch.service_start
        issuing.revise_dispatch(
            dispatch=dispatch, service_start=options["start"], service_end=options["end"],
            timings=self._timings(options, start, setpoint_type), status=options["status"],
            urgency=options["urgency"], issued_by="cli", reason=options["reason"])
        dispatch.refresh_from_db()
        return DispatchHistorySerializer(dispatch).data

    def _stop(self, **options) -> dict:
        dispatch = selectors.find_dispatch(options["ref"], operator=options["operator"])
        issuing.stop_dispatch(dispatch=dispatch, emergency=options["emergency"],
                              issued_by="cli", reason=options["reason"])
        dispatch.refresh_from_db()
        return DispatchHistorySerializer(dispatch).data

    def _show(self, **options) -> dict:
        dispatch = selectors.find_dispatch(options["ref"], operator=options["operator"])
        return DispatchHistorySerializer(dispatch).data

    def _audit_export(self, **options) -> dict:
        dispatch = selectors.find_dispatch(options["ref"], operator=options["operator"])
        document = audit.export(dispatch)
        out = Path(options["out"])
        out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return {"file": str(out), "entries": len(document["entries"]),
                "links": len(document["links"]), "headHash": document["headHash"],
                "verify": f"gbflex-audit verify {out}"}

    def _comms(self, **options) -> dict:
        changes = comms.check_comms() if options["check"] else []
        return {"checked": options["check"],
                "transitions": [{"site": str(c.site), "from": c.from_state, "to": c.to_state,
                                 "at": c.at.isoformat()} for c in changes],
                "sites": SiteSerializer(selectors.sites(), many=True).data}

    def _signed_reports(self, **options) -> dict:
        operator = selectors.find_operator(options["operator"])
        if options["required"] is not None:
            operator = report_signatures.set_require_signed_reports(
                operator=operator.code, required=options["required"], changed_by="cli",
                reason=options["reason"])
        return {"operator": operator.code,
                "requireSignedReports": operator.require_signed_reports}

    def _rotate_key(self, **options) -> dict:
        key = signing_keys.rotate_signing_key(operator=options["operator"])
        return {"operator": key.operator.code, "kid": key.kid, "public_jwk": key.public_jwk,
                "jwks": selectors.jwks()}
