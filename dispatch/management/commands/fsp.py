"""`manage.py fsp <action>`: the GB dispatch registry.

``onboard`` registers an FSP site (FSP, VEN, OAuth2 client, optional certificate,
resources and dispatch units, privacy targets) and prints it as one JSON object;
``unit`` shows or changes a unit's capabilities (kW, kVAr); ``contract`` records a
contract; ``products`` lists the products and their parameters.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dispatch import fsp_office, onboarding, programs, registry, rules, selectors
from dispatch.api.serializers import ProductParametersSerializer, UnitSerializer
from dispatch.management.commands._common import decimal, dumps, iso_datetime, problem_error
from dispatch.mapping import duration
from dispatch.models import Product
from vtn.auth.services import ClientError
from vtn.errors import Problem

_UNCHANGED = object()  # --kvar not given


class Command(BaseCommand):
    help = "GB dispatch registry: onboard FSP sites, record contracts, list products."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
        onboard = sub.add_parser(
            "onboard", help="register an FSP site with its dispatch units",
            description="Create the FSP (if new), the site's VEN and VEN client (and, with "
                        "--dir, its certificate bundle as `pki onboard` does), one resource "
                        "and dispatch unit per --unit, and grant the VEN its targets. "
                        "Prints one JSON object; the client secret is shown once.")
        codes = ", ".join(registry.NETWORK_OPERATORS)
        onboard.add_argument("--operator", required=True, help=f"network operator ({codes})")
        onboard.add_argument("--fsp", required=True, help="FSP identifier assigned by the operator")
        onboard.add_argument("--unit", action="append", required=True, type=self._unit_spec,
                             metavar=registry.UNIT_SPEC,
                             help="a dispatch unit (repeatable): real power in kW, direction "
                                  "(default import) and, for a unit that offers reactive "
                                  "power, its capacity in kVAr, e.g. bat1:500:export:300")
        onboard.add_argument("--site", default="main", help="site name (default main)")
        onboard.add_argument("--name", default="", help="FSP display name")
        onboard.add_argument("--zone", default="", help="location or congestion zone")
        onboard.add_argument("--dir", type=Path, default=None,
                             help="PKI directory: also issue the site certificate bundle")
        onboard.add_argument("--out", type=Path, default=None,
                             help="where the certificate bundle goes (default: --dir)")
        onboard.add_argument("--site-key", action="append", default=[], type=self._jwk,
                             dest="site_key", metavar="JWK_FILE",
                             help="a JSON file holding the site's public Ed25519 JWK for "
                                  "signing acknowledgements (repeatable)")

        contract = sub.add_parser("contract", help="record a contract",
                                  description="Record an operator's contract with an FSP for "
                                              "one product and some of its units.")
        contract.add_argument("--operator", required=True)
        contract.add_argument("--fsp", required=True)
        contract.add_argument("--id", required=True, dest="identifier", help="contract id")
        contract.add_argument("--product", required=True)
        contract.add_argument("--unit", action="append", required=True, dest="units",
                              metavar="REF", help="unit reference (repeatable)")
        contract.add_argument("--window", action="append", default=[], type=self._window,
                              metavar="START/END", help="service window, ISO 8601 (repeatable)")
        contract.add_argument("--availability-price", type=decimal, default=0,
                              help="GBP per MW per hour")
        contract.add_argument("--utilisation-price", type=decimal, default=0,
                              help="GBP per MWh")
        contract.add_argument("--reactive-price", type=decimal, default=0,
                              help="GBP per MVArh of reactive power delivered")
        contract.add_argument("--emergency-premium", type=decimal, default=None,
                              metavar="PERCENT",
                              help="uplift on the utilisation payment of emergency periods, "
                                   "percent (default: none)")
        contract.add_argument("--baseline", default="", metavar="METHOD",
                              help="baseline of real power: high-X-of-Y, average-Y, "
                                   "meter-before-N or nominated (default: high-3-of-5)")
        contract.add_argument("--reactive-baseline", default="", metavar="METHOD",
                              help="baseline of delta reactive setpoints: meter-before-N, "
                                   "high-X-of-Y or average-Y (default: meter-before-4)")
        contract.add_argument("--capacity-kw", type=decimal, default=None,
                              help="contracted capacity (default: the units' capacities)")
        contract.add_argument("--comms-loss", dest="comms_loss_availability",
                              choices=["unavailable", "as_declared"], default="unavailable",
                              help="availability while a unit's site is comms lost: not paid "
                                   "(default) or paid as declared")

        products = sub.add_parser(
            "products", help="the products and their parameters as JSON",
            description="Without --operator: every product with its defaults. With "
                        "--operator: the parameters that operator's products apply. With "
                        "--operator, --product and --set: set that operator's own values "
                        "(audited, and published at once in its OpenADR program).")
        products.add_argument("--operator", default="", help="network operator code")
        products.add_argument("--product", default="", help="product code, e.g. MW_DISPATCH")
        products.add_argument("--set", action="append", default=[], dest="set",
                              metavar="NAME=VALUE",
                              help="notice_period, ramp_time or heartbeat_interval = an ISO "
                                   "8601 duration (heartbeat_interval may be NONE; DEFAULT "
                                   "returns to the product's default); repeatable")
        products.add_argument("--reason", default="", help="why (kept in the audit entry)")

        unit = sub.add_parser(
            "unit", help="show or change a unit's capabilities (kW, kVAr)",
            description="Without --kw and --kvar: print the unit. With them: change its "
                        "real (kW) and reactive (kVAr) capability, checked against its "
                        "contracts and recorded in the audit log. --kvar none removes the "
                        "reactive capability.")
        unit.add_argument("--operator", required=True)
        unit.add_argument("--fsp", required=True)
        unit.add_argument("--unit", required=True, dest="reference", help="unit reference")
        unit.add_argument("--kw", type=decimal, default=None, help="real power capacity, kW")
        unit.add_argument("--kvar", type=self._kvar, default=_UNCHANGED,
                          help="reactive power capacity, kVAr (none: no reactive power)")
        unit.add_argument("--reason", default="", help="why (kept in the audit entry)")

        staff = sub.add_parser(
            "staff-client", help="an API client for an FSP's back office",
            description="Create an API client (role fsp) for the back office of one FSP "
                        "registration: it reads the FSP's sites, dispatches, "
                        "acknowledgements, availability and statements; with --role "
                        "commercial it may also accept or dispute statements, with --role "
                        "metering post its units' meter readings in bulk. Prints the "
                        "credentials once.")
        staff.add_argument("--operator", required=True)
        staff.add_argument("--fsp", required=True)
        staff.add_argument("--name", required=True, help="client name")
        staff.add_argument("--role", required=True,
                           choices=["read_only", "commercial", "metering"])
        reference = sub.add_parser(
            "set-reference", help="the FSP's own reference on one registration",
            description="Registrations of one FSP with several operators that share a "
                        "reference are seen together by each one's back office.")
        reference.add_argument("--operator", required=True)
        reference.add_argument("--fsp", required=True)
        reference.add_argument("--reference", required=True)

    @staticmethod
    def _unit_spec(text: str):
        try:
            return registry.parse_unit_spec(text)
        except registry.RegistryError as exc:
            raise CommandError(str(exc)) from exc

    @staticmethod
    def _kvar(text: str) -> Decimal | None:
        return None if text.strip().lower() == "none" else decimal(text)

    @staticmethod
    def _jwk(path: str) -> dict:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read a JWK from {path}: {exc}") from exc

    @staticmethod
    def _window(text: str):
        start, _, end = text.partition("/")
        return iso_datetime(start), iso_datetime(end)

    def handle(self, *args, action: str, **options) -> None:
        try:
            result = getattr(self, f"_{action.replace('-', '_')}")(**options)
        except Problem as exc:
            raise problem_error(exc) from exc
        self.stdout.write(dumps(result))

    def _staff_client(self, **options) -> dict:
        try:
            issued = fsp_office.create_staff_client(
                operator=options["operator"], fsp=options["fsp"], name=options["name"],
                role=options["role"])
        except ClientError as exc:
            raise CommandError(str(exc)) from exc
        return issued.as_dict() | {"operator": options["operator"].upper(),
                                   "fsp": options["fsp"], "fsp_role": options["role"]}

    def _set_reference(self, **options) -> dict:
        found = fsp_office.set_reference(operator=options["operator"], fsp=options["fsp"],
                                         reference=options["reference"])
        return {"operator": found.operator.code, "fsp": found.identifier,
                "reference": found.reference}

    def _onboard(self, **options) -> dict:
        return onboarding.onboard_fsp(
            operator=options["operator"], fsp=options["fsp"], units=options["unit"],
            site=options["site"], fsp_name=options["name"], zone=options["zone"],
            pki_dir=options["dir"], out_dir=options["out"], site_keys=options["site_key"])

    def _unit(self, **options) -> dict:
        found = selectors.find_unit(options["reference"], fsp=options["fsp"],
                                    operator=options["operator"])
        changes: dict = {}
        if options["kw"] is not None:
            changes["capacity_kw"] = options["kw"]
        if options["kvar"] is not _UNCHANGED:
            changes["capacity_kvar"] = options["kvar"]
        if changes:
            found = onboarding.set_unit_capabilities(unit=found, changed_by="cli",
                                                     reason=options["reason"], **changes)
        return dict(UnitSerializer(found).data)

    def _contract(self, **options) -> dict:
        contract = onboarding.create_contract(
            operator=options["operator"], identifier=options["identifier"],
            fsp=options["fsp"], product=options["product"], units=options["units"],
            service_windows=options["window"],
            availability_price=options["availability_price"],
            utilisation_price=options["utilisation_price"], baseline_method=options["baseline"],
            capacity_kw=options["capacity_kw"],
            comms_loss_availability=options["comms_loss_availability"],
            reactive_utilisation_price=options["reactive_price"],
            emergency_premium_percent=options["emergency_premium"],
            reactive_baseline_method=options["reactive_baseline"])
        return {"operator": contract.operator.code, "id": contract.identifier,
                "fsp": contract.fsp.identifier, "product": contract.product.code,
                "units": sorted(contract.units.values_list("reference", flat=True)),
                "service_windows": contract.service_windows, "currency": contract.currency,
                "availability_price_gbp_per_mw_h": str(contract.availability_price),
                "utilisation_price_gbp_per_mwh": str(contract.utilisation_price),
                "baseline_method": contract.baseline_method,
                "reactive_baseline_method": contract.reactive_baseline_method
                or rules.REACTIVE_BASELINE_DEFAULT,
                "capacity_kw": None if contract.capacity_kw is None else str(contract.capacity_kw),
                "comms_loss_availability": contract.comms_loss_availability,
                "reactive_utilisation_price_gbp_per_mvarh":
                    str(contract.reactive_utilisation_price),
                "emergency_premium_percent": None if contract.emergency_premium_percent is None
                else str(contract.emergency_premium_percent)}

    def _products(self, **options) -> list | dict:
        operator, product, changes = options["operator"], options["product"], options["set"]
        if changes:
            if not operator or not product:
                raise CommandError("--set needs --operator and --product")
            parsed = {}
            for item in changes:
                name, sep, value = item.partition("=")
                if not sep:
                    raise CommandError(f"--set {item!r}: use NAME=VALUE")
                parsed[name.strip()] = value.strip()
            return ProductParametersSerializer(programs.set_product_parameters(
                operator=operator, product=product, changes=parsed, changed_by="cli",
                reason=options["reason"])).data
        if operator:
            found = selectors.find_operator(operator)
            chosen = [programs.find_product(product)] if product else Product.objects.all()
            return ProductParametersSerializer(
                [programs.product_parameter_settings(found, p) for p in chosen], many=True).data
        return [{"code": p.code, "name": p.name, "notice_period": duration(p.notice_period),
                 "ramp_time": duration(p.ramp_time), "quantity": p.quantity,
                 "setpoint_types": p.setpoint_types, "directions": p.directions,
                 "heartbeat_interval": duration(p.heartbeat_interval)
                 if p.heartbeat_interval else None,
                 "availability_paid": p.availability_paid,
                 "default_urgency": p.default_urgency} for p in Product.objects.all()]
