"""The registry's writes: onboarding an FSP site (its VEN, OAuth2 client, certificate,
resources and dispatch units) and contracts between an operator and an FSP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction

from dispatch import audit, fsp_events, programs, publishing, registry, rules
from dispatch.models import Contract, DispatchUnit, Fsp, FspSite
from dispatch.products import unit_problem
from dispatch.publishing import PROFILE_CALLER
from dispatch.site_keys import register_site_key
from gbflex_profile.vocabulary import GB_REPORT_SIGNATURE
from vtn import pki
from vtn import services as vtn_services
from vtn import targets as target_rules
from vtn.auth import certificates
from vtn.auth.services import ClientError, create_client
from vtn.errors import BadRequest, Conflict
from vtn.models import Client, Ven


@transaction.atomic
def onboard_fsp(*, operator: str, fsp: str, units: list[registry.UnitSpec],
                site: str = "main", fsp_name: str = "", zone: str = "",
                pki_dir: Path | None = None, out_dir: Path | None = None,
                site_keys: Sequence[dict] = ()) -> dict:
    """Register an FSP site: the FSP (if new), the site's VEN and OAuth2 client (with a
    site certificate when ``pki_dir`` is given, as ``pki onboard``), one resource and
    dispatch unit per unit, and the VEN's privacy targets. Returns everything as a
    JSON-ready dict; the client secret appears only here. ``site_keys`` are public JWKs
    the site signs acknowledgements with, registered at once (as ``POST site-keys``).

    Refuses (Conflict) a site or unit that already exists: nothing is created then.
    """
    op = programs.ensure_operator(operator)
    try:
        registry.check_identifier(fsp, "FSP identifier")
        registry.check_identifier(site, "site")
        if pki_dir is not None:  # names the PKI keeps for its own files (ca, server, crl)
            pki.check_name(fsp, "FSP")
            pki.check_name(site, "site")
    except registry.RegistryError as exc:
        raise BadRequest(str(exc)) from exc
    except pki.PkiError as exc:
        raise BadRequest(str(exc)) from exc
    if not units:
        raise BadRequest("give at least one dispatch unit")
    references = [u.reference for u in units]
    if len(set(references)) != len(references):
        raise BadRequest("unit references must be unique")
    if GB_REPORT_SIGNATURE in references:  # the resource a signed report's signature is in
        raise BadRequest(f"{GB_REPORT_SIGNATURE} is reserved and cannot name a unit")
    fsp_row, _ = Fsp.objects.get_or_create(operator=op, identifier=fsp,
                                           defaults={"name": fsp_name or fsp})
    if FspSite.objects.filter(fsp=fsp_row, name=site).exists():
        raise Conflict(f"site {site!r} of FSP {op.code}/{fsp} is already onboarded; "
                       "rotate its secret with `oadr_client rotate` instead")
    taken = sorted(DispatchUnit.objects.filter(fsp=fsp_row, reference__in=references)
                   .values_list("reference", flat=True))
    if taken:
        raise Conflict(f"FSP {op.code}/{fsp} already has units {', '.join(taken)}")
    name = registry.ven_name(op.code, fsp, site)
    if Client.objects.filter(name=name).exists() or Ven.objects.filter(ven_name=name).exists():
        raise Conflict(f"a client or VEN named {name!r} already exists")
    certificate: dict = {}
    try:
        if pki_dir is not None:
            certificate = certificates.onboard_site(
                fsp=fsp, site=site, pki_dir=Path(pki_dir), out_dir=out_dir, ven_name=name,
                client_name=name)
            credentials = {key: certificate.pop(key) for key in
                           ("client_id", "client_secret", "scopes", "require_mtls")}
            for key in ("name", "role", "ven_name", "ven_id"):
                certificate.pop(key, None)
        else:
            issued = create_client(name=name, role=Client.Role.VEN, ven_name=name)
            credentials = {"client_id": issued.client.client_id,
                           "client_secret": issued.client_secret,
                           "scopes": sorted(issued.client.scope_set),
                           "require_mtls": issued.client.require_mtls}
    except (ClientError, certificates.CertificateError, pki.PkiError, ValueError) as exc:
        raise BadRequest(str(exc)) from exc
    ven = Ven.objects.get(ven_name=name)
    fsp_target = registry.fsp_label(op.code, fsp)
    ven = vtn_services.save_ven(caller=PROFILE_CALLER, ven=ven, data={
        "targets": target_rules.from_strings([fsp_target])})
    publishing.own_ven(ven, operator=op.code)
    site_row = FspSite.objects.create(fsp=fsp_row, name=site, ven=ven)
    events = fsp_events.ensure_events(op, fsp)
    keys = [register_site_key(site=site_row, jwk=jwk) for jwk in site_keys]
    unit_rows = []
    for spec in units:
        label = registry.unit_label(op.code, fsp, spec.reference)
        resource = vtn_services.save_resource(caller=PROFILE_CALLER, ven=ven, data={
            "resource_name": spec.reference, "targets": target_rules.from_strings([label])})
        unit_rows.append(DispatchUnit.objects.create(
            fsp=fsp_row, site=site_row, reference=spec.reference,
            capacity_kw=spec.capacity_kw, capacity_kvar=spec.capacity_kvar,
            direction=spec.direction, zone=zone, resource=resource))
    result = {
        "operator": op.code, "fsp": fsp, "site": site, "ven_name": ven.ven_name,
        "ven_id": ven.pk, **credentials, "targets": [fsp_target],
        "units": [unit_summary(u) for u in unit_rows],
        "heartbeat_event_id": events[fsp_events.HEARTBEAT].pk,
        "availability_event_id": events[fsp_events.AVAILABILITY].pk,
        "metering_event_id": events[fsp_events.METERING].pk,
        "site_keys": [key.kid for key in keys],
    }
    if certificate:
        result["certificate"] = certificate
    return result


def unit_summary(unit: DispatchUnit) -> dict:
    return {"reference": unit.reference, "capacity_kw": str(unit.capacity_kw),
            "capacity_kvar": None if unit.capacity_kvar is None else str(unit.capacity_kvar),
            "direction": unit.direction, "zone": unit.zone, "resource_id": unit.resource_id,
            "resource_name": unit.resource.resource_name,
            "target": registry.unit_label(unit.fsp.operator.code, unit.fsp.identifier,
                                          unit.reference)}


def capabilities(unit: DispatchUnit) -> dict:
    """A unit's capabilities as the audit log and the APIs name them (decimal strings)."""
    return {"capacityKw": format(unit.capacity_kw.normalize(), "f"),
            "capacityKvar": None if unit.capacity_kvar is None
            else format(unit.capacity_kvar.normalize(), "f")}


_KEEP: Any = object()  # capacity_kvar not given: leave it as it is


@transaction.atomic
def set_unit_capabilities(*, unit: DispatchUnit, capacity_kw: Decimal | None = None,
                          capacity_kvar: Decimal | None | Any = _KEEP, changed_by: str,
                          reason: str = "") -> DispatchUnit:
    """Change what ``unit`` can deliver: real power ``capacity_kw`` (kW, positive) and
    reactive power ``capacity_kvar`` (kVAr, positive; None: no reactive power, so every
    reactive dispatch to it is refused). What is not given stays. The unit must still fit
    every product it is contracted for (MW Dispatch: over 1 MW). Recorded in the audit
    chain (``unit_capability_changed``). Dispatches already issued keep what they said;
    the new limits apply to every later revision. Refused with 400 and nothing changed
    when a value or a contract does not fit."""
    row = DispatchUnit.objects.select_for_update().select_related("fsp__operator").get(
        pk=unit.pk)
    before = capabilities(row)
    errors = []
    new_kw, new_kvar = row.capacity_kw, row.capacity_kvar
    try:
        if capacity_kw is not None:
            new_kw = registry.capacity(str(capacity_kw), "capacityKw")
    except registry.RegistryError as exc:
        errors.append(str(exc))
    try:
        if capacity_kvar is not _KEEP:
            new_kvar = None if capacity_kvar is None else registry.capacity(
                str(capacity_kvar), "capacityKvar")
    except registry.RegistryError as exc:
        errors.append(str(exc))
    if errors:
        raise BadRequest("The unit's capabilities are not valid.", errors=errors)
    for contract in row.contracts.select_related("product"):
        problem = unit_problem(contract.product.code, contract.product.directions,
                               direction=row.direction, capacity_kw=new_kw)
        if problem:
            errors.append(f"contract {contract.identifier}: {problem}")
    if errors:
        raise BadRequest("The unit would no longer fit its contracts.", errors=errors)
    row.capacity_kw, row.capacity_kvar = new_kw, new_kvar
    row.save(update_fields=["capacity_kw", "capacity_kvar"])
    row.refresh_from_db(fields=["capacity_kw", "capacity_kvar"])
    after = capabilities(row)
    if after != before:
        audit.record_unit_capabilities(row, before=before, after=after,
                                       changed_by=changed_by or "unknown", reason=reason)
    return row


@transaction.atomic
def create_contract(*, operator: str, identifier: str, fsp: str, product: str,
                    units: list[str], service_windows: Sequence[tuple[datetime, datetime]] = (),
                    availability_price: Decimal = Decimal(0),
                    utilisation_price: Decimal = Decimal(0),
                    baseline_method: str = "",
                    capacity_kw: Decimal | None = None,
                    comms_loss_availability: str = Contract.CommsLoss.UNAVAILABLE,
                    reactive_utilisation_price: Decimal = Decimal(0),
                    emergency_premium_percent: Decimal | None = None,
                    reactive_baseline_method: str = "") -> Contract:
    """A contract of ``operator`` with an FSP for one product and some of its units.
    Prices are GBP: availability per MW per hour, utilisation per MWh; ``capacity_kw`` is
    the contracted capacity across the units (None: the sum of their capacities);
    ``comms_loss_availability`` says how time in comms loss counts for availability
    (``unavailable``: not paid, the default; ``as_declared``: paid as declared).
    ``reactive_utilisation_price`` is GBP per MVArh of reactive power delivered;
    ``emergency_premium_percent`` the uplift (percent, 0-1000) on the utilisation payment of
    periods instructed with urgency emergency (None: no premium);
    ``baseline_method`` what real power is measured from (``high-X-of-Y``, ``average-Y``,
    ``meter-before-N`` or ``nominated``; empty: ``high-3-of-5``);
    ``reactive_baseline_method`` what delta reactive setpoints are measured from
    (``meter-before-N``, ``high-X-of-Y`` or ``average-Y``; empty: ``meter-before-4``)."""
    if comms_loss_availability not in Contract.CommsLoss.values:
        raise BadRequest("comms loss availability must be one of "
                         f"{', '.join(Contract.CommsLoss.values)}")
    op = programs.ensure_operator(operator)
    try:
        registry.check_identifier(identifier, "contract id")
    except registry.RegistryError as exc:
        raise BadRequest(str(exc)) from exc
    fsp_row = Fsp.objects.filter(operator=op, identifier=fsp).first()
    if fsp_row is None:
        raise BadRequest(f"no FSP {fsp!r} registered with {op.code}")
    product_row = programs.find_product(product)
    unit_rows = list(DispatchUnit.objects.filter(fsp=fsp_row, reference__in=units))
    missing = sorted(set(units) - {u.reference for u in unit_rows})
    if missing or not units:
        raise BadRequest(f"FSP {fsp} has no units {', '.join(missing)}" if missing
                         else "a contract covers at least one unit")
    unfit = [f"{unit.reference}: {problem}" for unit in unit_rows if (problem := unit_problem(
        product_row.code, product_row.directions, direction=unit.direction,
        capacity_kw=unit.capacity_kw))]
    if unfit:
        raise BadRequest(f"these units cannot serve {product_row.code}", errors=unfit)
    for price in (availability_price, utilisation_price, reactive_utilisation_price):
        if not Decimal(price).is_finite() or Decimal(price) < 0:
            raise BadRequest("prices must be non-negative numbers")
    if emergency_premium_percent is not None and (
            not Decimal(emergency_premium_percent).is_finite()
            or not 0 <= Decimal(emergency_premium_percent) <= 1000):
        raise BadRequest("the emergency premium is a percentage between 0 and 1000")
    baseline_method = baseline_method.strip().lower()
    if problem := rules.baseline_problem(baseline_method):
        raise BadRequest(problem)
    reactive_baseline_method = reactive_baseline_method.strip().lower()
    if problem := rules.baseline_problem(reactive_baseline_method, reactive=True):
        raise BadRequest(problem)
    if capacity_kw is not None and (not Decimal(capacity_kw).is_finite()
                                    or Decimal(capacity_kw) <= 0):
        raise BadRequest("the contracted capacity must be a positive number of kW")
    windows = []
    for start, end in service_windows:
        start, end = rules.utc_seconds(start), rules.utc_seconds(end)
        if end <= start:
            raise BadRequest("a service window ends after it starts")
        windows.append({"start": rules.iso(start), "end": rules.iso(end)})
    if Contract.objects.filter(operator=op, identifier=identifier).exists():
        raise Conflict(f"{op.code} already has a contract {identifier!r}")
    contract = Contract.objects.create(
        operator=op, identifier=identifier, fsp=fsp_row, product=product_row,
        service_windows=windows, availability_price=Decimal(availability_price),
        utilisation_price=Decimal(utilisation_price), baseline_method=baseline_method,
        capacity_kw=None if capacity_kw is None else Decimal(capacity_kw),
        comms_loss_availability=comms_loss_availability,
        reactive_utilisation_price=Decimal(reactive_utilisation_price),
        emergency_premium_percent=None if emergency_premium_percent is None
        else Decimal(emergency_premium_percent),
        reactive_baseline_method=reactive_baseline_method)
    contract.units.set(unit_rows)
    programs.ensure_program(op, product_row)
    return contract
