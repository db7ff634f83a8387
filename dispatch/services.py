"""Every write of the dispatch app: registry, products and programs, signing keys, and
dispatch revisions with their OpenADR events.

OpenADR objects are written only through ``vtn.services`` (as business logic), with
request bodies validated by the 3.1 wire format first, so what the profile publishes is
exactly what an OpenADR client could have sent. Rule violations raise the API's problem
errors (``vtn.errors``), so HTTP, commands and tests report them alike.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dispatch import audit, fsp_events, mapping, registry, rules, signing
from dispatch.identity import PROFILE_CALLER
from dispatch.models import (
    Acknowledgement,
    Contract,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    Fsp,
    FspSite,
    NetworkOperator,
    OperatorProgram,
    Product,
    ProductParameterChange,
    SigningKey,
    SiteSigningKey,
)
from dispatch.products import PRODUCT_TEMPLATES, normalise_code, turns_to_zero
from gbflex_profile import acks, jose
from vtn import pki, timing
from vtn import services as vtn_services
from vtn import targets as target_rules
from vtn.auth import certificates
from vtn.auth.services import ClientError, create_client
from vtn.errors import BadRequest, Conflict, Forbidden, NotFound
from vtn.models import Client, Report, Ven
from vtn.wire.v31 import Wire31

_WIRE = Wire31()


def _registry_error(exc: registry.RegistryError) -> BadRequest:
    return BadRequest(str(exc))


# --- registry ---------------------------------------------------------------------------------

def ensure_operator(code: str) -> NetworkOperator:
    """The operator with ``code`` (from the well-known list), created on first use."""
    try:
        code = registry.check_operator_code(code)
    except registry.RegistryError as exc:
        raise _registry_error(exc) from exc
    operator, _ = NetworkOperator.objects.get_or_create(
        code=code, defaults={"name": registry.NETWORK_OPERATORS[code]})
    return operator


def load_products() -> list[Product]:
    """Create the five products from their templates; existing rows are left as they are
    (an operator may have tuned them). Safe to run any number of times."""
    result = []
    for item in PRODUCT_TEMPLATES:
        product, _ = Product.objects.get_or_create(code=item.code, defaults={
            "name": item.name, "summary": item.summary, "notice_period": item.notice_period,
            "ramp_time": item.ramp_time, "quantity": item.quantity,
            "setpoint_types": list(item.setpoint_types), "directions": list(item.directions),
            "heartbeat_interval": item.heartbeat_interval,
            "availability_paid": item.availability_paid,
            "default_urgency": item.default_urgency})
        result.append(product)
    return result


def find_product(code: str) -> Product:
    product = Product.objects.filter(code=normalise_code(code)).first()
    if product is None:
        known = ", ".join(Product.objects.values_list("code", flat=True))
        raise BadRequest(f"unknown product {code!r}; use one of {known}")
    return product


# The timing parameters an operator may set per product: (name, least, most, may be none).
PRODUCT_PARAMETERS = {
    "notice_period": (timedelta(0), timedelta(days=30), False),
    "ramp_time": (timedelta(0), timedelta(days=1), False),
    "heartbeat_interval": (timedelta(seconds=10), timedelta(days=1), True),
}


def product_parameters(operator: NetworkOperator, product: Product) -> dict[str, timedelta | None]:
    """The timing parameters that apply to ``operator``'s ``product``: the operator's own
    values where it set them, else the product's defaults."""
    values = {name: getattr(product, name) for name in PRODUCT_PARAMETERS}
    program = OperatorProgram.objects.filter(operator=operator, product=product).first()
    for name, text in (program.parameters if program else {}).items():
        values[name] = None if text is None else timing.parse_duration(text)
    return values


def required_parameter(values: dict[str, timedelta | None], name: str) -> timedelta:
    """A parameter of :func:`product_parameters` that always has a value (the notice
    period and the ramp time; only the heartbeat interval may be none)."""
    value = values[name]
    if value is None:
        raise ValueError(f"{name} has no value")
    return value


def _program_body(operator: NetworkOperator, product: Product,
                  values: dict[str, timedelta | None]) -> dict:
    return mapping.program_body(
        operator=operator.code, product_code=product.code,
        notice_period=required_parameter(values, "notice_period"),
        ramp_time=required_parameter(values, "ramp_time"),
        quantity=product.quantity, setpoint_types=list(product.setpoint_types),
        heartbeat_interval=values["heartbeat_interval"],
        availability_paid=product.availability_paid)


@transaction.atomic
def ensure_program(operator: NetworkOperator, product: Product) -> OperatorProgram:
    """The OpenADR program of ``operator``'s ``product``, created from the template once."""
    existing = OperatorProgram.objects.filter(operator=operator, product=product).first()
    if existing is not None:
        return existing
    body = _program_body(operator, product, product_parameters(operator, product))
    program = vtn_services.save_program(caller=PROFILE_CALLER, data=_WIRE.program_in(body))
    return OperatorProgram.objects.create(operator=operator, product=product, program=program)


def _durations(values: dict[str, timedelta | None]) -> dict[str, str | None]:
    return {name: None if value is None else mapping.duration(value)
            for name, value in values.items()}


def product_parameters_as_dict(operator: NetworkOperator, product: Product) -> dict:
    """What an operator's product applies, and which values are still the defaults."""
    program = OperatorProgram.objects.filter(operator=operator, product=product).first()
    own = program.parameters if program else {}
    return {"operator": operator.code, "product": product.code,
            "programName": mapping.program_name(operator.code, product.code),
            "parameters": _durations(product_parameters(operator, product)),
            "defaults": _durations({name: getattr(product, name)
                                    for name in PRODUCT_PARAMETERS}),
            "operatorSet": sorted(own)}


def _checked_parameters(changes: dict) -> dict[str, str | None]:
    """``changes`` (name -> ISO 8601 duration, "NONE"/None for no heartbeat, or "DEFAULT"
    to go back to the product's default) as stored text; every problem at once."""
    if not isinstance(changes, dict) or not changes:
        raise BadRequest("give at least one parameter to set: "
                         + ", ".join(PRODUCT_PARAMETERS))
    errors: list[str] = []
    checked: dict[str, str | None] = {}
    for name, value in changes.items():
        if name not in PRODUCT_PARAMETERS:
            errors.append(f"{name}: unknown parameter; use one of "
                          + ", ".join(PRODUCT_PARAMETERS))
            continue
        least, most, may_be_none = PRODUCT_PARAMETERS[name]
        if isinstance(value, str) and value.upper() == "DEFAULT":
            checked[name] = "DEFAULT"
            continue
        if value is None or (isinstance(value, str) and value.upper() == "NONE"):
            if may_be_none:
                checked[name] = None
            else:
                errors.append(f"{name}: a duration is required")
            continue
        try:
            parsed = timing.parse_duration(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.total_seconds() != int(parsed.total_seconds()):
            errors.append(f"{name}: {value!r} is not an ISO 8601 duration in whole seconds "
                          "(e.g. PT15M, P1D)")
        elif not least <= parsed <= most:
            errors.append(f"{name}: must be between {mapping.duration(least)} and "
                          f"{mapping.duration(most)}")
        else:
            checked[name] = mapping.duration(parsed)
    if errors:
        raise BadRequest("The product parameters are not valid.", errors=errors)
    return checked


@transaction.atomic
def set_product_parameters(*, operator: str, product: str, changes: dict, changed_by: str,
                           reason: str = "") -> dict:
    """Set ``operator``'s own values of ``product``'s timing parameters, record the change
    (audit) and publish it at once as an update of the operator's OpenADR program, so
    agents read the new attributes (heartbeat interval included) at their next poll."""
    op, found = ensure_operator(operator), find_product(product)
    checked = _checked_parameters(changes)
    program = ensure_program(op, found)
    program = OperatorProgram.objects.select_for_update().get(pk=program.pk)
    before = _durations(product_parameters(op, found))
    stored = dict(program.parameters)
    for name, value in checked.items():
        if value == "DEFAULT":
            stored.pop(name, None)
        else:
            stored[name] = value
    program.parameters = stored
    program.save(update_fields=["parameters"])
    values = product_parameters(op, found)
    vtn_services.save_program(caller=PROFILE_CALLER, program=program.program,
                              data=_WIRE.program_in(_program_body(op, found, values)))
    ProductParameterChange.objects.create(
        operator=op, product=found, changed_by=changed_by or "unknown", before=before,
        after=_durations(values), reason=reason)
    return product_parameters_as_dict(op, found)


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
    op = ensure_operator(operator)
    try:
        registry.check_identifier(fsp, "FSP identifier")
        registry.check_identifier(site, "site")
        if pki_dir is not None:  # names the PKI keeps for its own files (ca, server, crl)
            pki.check_name(fsp, "FSP")
            pki.check_name(site, "site")
    except registry.RegistryError as exc:
        raise _registry_error(exc) from exc
    except pki.PkiError as exc:
        raise BadRequest(str(exc)) from exc
    if not units:
        raise BadRequest("give at least one dispatch unit")
    references = [u.reference for u in units]
    if len(set(references)) != len(references):
        raise BadRequest("unit references must be unique")
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
            capacity_kw=spec.capacity_kw, direction=spec.direction, zone=zone,
            resource=resource))
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


@transaction.atomic
def create_contract(*, operator: str, identifier: str, fsp: str, product: str,
                    units: list[str], service_windows: Sequence[tuple[datetime, datetime]] = (),
                    availability_price: Decimal = Decimal(0),
                    utilisation_price: Decimal = Decimal(0),
                    baseline_method: str = "",
                    capacity_kw: Decimal | None = None) -> Contract:
    """A contract of ``operator`` with an FSP for one product and some of its units.
    Prices are GBP: availability per MW per hour, utilisation per MWh; ``capacity_kw`` is
    the contracted capacity across the units (None: the sum of their capacities)."""
    op = ensure_operator(operator)
    try:
        registry.check_identifier(identifier, "contract id")
    except registry.RegistryError as exc:
        raise _registry_error(exc) from exc
    fsp_row = Fsp.objects.filter(operator=op, identifier=fsp).first()
    if fsp_row is None:
        raise BadRequest(f"no FSP {fsp!r} registered with {op.code}")
    product_row = find_product(product)
    unit_rows = list(DispatchUnit.objects.filter(fsp=fsp_row, reference__in=units))
    missing = sorted(set(units) - {u.reference for u in unit_rows})
    if missing or not units:
        raise BadRequest(f"FSP {fsp} has no units {', '.join(missing)}" if missing
                         else "a contract covers at least one unit")
    for price in (availability_price, utilisation_price):
        if not Decimal(price).is_finite() or Decimal(price) < 0:
            raise BadRequest("prices must be non-negative numbers")
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
        capacity_kw=None if capacity_kw is None else Decimal(capacity_kw))
    contract.units.set(unit_rows)
    ensure_program(op, product_row)
    return contract


# --- signing keys ------------------------------------------------------------------------------

def _passphrase() -> bytes:
    return (settings.DISPATCH_SIGNING_KEY_PASSPHRASE or settings.SECRET_KEY).encode()


# kid -> whether its stored private key decrypted (per process; keys never change).
_loadable_keys: dict[str, bool] = {}


def signing_keys_usable() -> bool:
    """Whether every operator's current signing key decrypts with this process's
    passphrase (``DISPATCH_SIGNING_KEY_PASSPHRASE``); True while none exists yet. A
    wrong passphrase after a restore or a changed SECRET_KEY makes this False."""
    passphrase = _passphrase()
    for kid, pem in SigningKey.objects.filter(retired_at__isnull=True).values_list(
            "kid", "private_key_pem"):
        if kid not in _loadable_keys:
            try:
                signing.unlock(pem, passphrase)
                _loadable_keys[kid] = True
            except (ValueError, TypeError):
                return False  # not remembered: a corrected passphrase is seen at once
        if not _loadable_keys[kid]:
            return False
    return True


def _new_signing_key(operator: NetworkOperator) -> SigningKey:
    new = signing.new_signing_key(operator.code, _passphrase())
    return SigningKey.objects.create(operator=operator, kid=new.kid,
                                     private_key_pem=new.private_key_pem,
                                     public_jwk=new.public_jwk)


@transaction.atomic
def active_signing_key(operator: NetworkOperator) -> SigningKey:
    """The operator's current signing key, created on first use."""
    NetworkOperator.objects.select_for_update().filter(pk=operator.pk).first()
    key = operator.signing_keys.filter(retired_at__isnull=True).order_by("-created").first()
    return key or _new_signing_key(operator)


@transaction.atomic
def rotate_signing_key(*, operator: str, now: datetime | None = None,
                       verify_for: timedelta | None = None,
                       keep_retired: int | None = None) -> SigningKey:
    """Retire the operator's current key and create a new one. A retired key stays in the
    JWKS for ``verify_for`` (default ``DISPATCH_SIGNING_KEY_VERIFY_DAYS``) so earlier
    signatures still verify. With ``keep_retired``, only that many of the operator's
    retired keys stay published (the newest); older ones leave the JWKS now. The
    conformance sandbox rotates with both, so its runs cannot grow the JWKS."""
    op = ensure_operator(operator)
    NetworkOperator.objects.select_for_update().filter(pk=op.pk).first()
    now = now or timezone.now()
    keep = verify_for if verify_for is not None else timedelta(
        days=settings.DISPATCH_SIGNING_KEY_VERIFY_DAYS)
    for key in op.signing_keys.filter(retired_at__isnull=True):
        key.retired_at = now
        key.verify_until = now + keep
        key.save(update_fields=["retired_at", "verify_until"])
    if keep_retired is not None:
        published = op.signing_keys.filter(retired_at__isnull=False, verify_until__gt=now)
        stale = list(published.order_by("-retired_at", "-id")
                     .values_list("id", flat=True)[max(0, keep_retired):])
        SigningKey.objects.filter(id__in=stale).update(verify_until=now)
    return _new_signing_key(op)


# --- dispatches --------------------------------------------------------------------------------

def _product_rules(product: Product, operator: NetworkOperator) -> rules.ProductRules:
    notice = required_parameter(product_parameters(operator, product), "notice_period")
    return rules.ProductRules(code=product.code, notice_period=notice,
                              quantity=product.quantity,
                              setpoint_types=tuple(product.setpoint_types),
                              directions=tuple(product.directions))


def _unit_limits(unit: DispatchUnit) -> rules.UnitLimits:
    return rules.UnitLimits(capacity_kw=unit.capacity_kw, capacity_kvar=unit.capacity_kvar,
                            direction=unit.direction)


def _windows(contract: Contract) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"]))
            for w in contract.service_windows]


def draft_of(revision: DispatchRevision) -> rules.DispatchDraft:
    """The draft a stored revision was made from (its signed document)."""
    doc = revision.document
    return rules.DispatchDraft(
        network_operator=doc["networkOperatorId"], reference=doc["dispatchRef"],
        revision=doc["revision"], status=revision.status, urgency=revision.urgency,
        fsp=doc["fspId"], unit=doc["dispatchUnit"], contract=doc["contractId"],
        product=doc["product"], instruction_time=revision.instruction_time,
        service_start=revision.service_start, service_end=revision.service_end,
        timings=tuple(rules.Timing.from_document(t) for t in doc["serviceTimings"]))


def _publish(instruction: DispatchInstruction, draft: rules.DispatchDraft,
             previous: rules.DispatchDraft | None, *, issued_by: str,
             reason: str) -> DispatchRevision:
    """Check, sign, store the revision and update the OpenADR event in place."""
    contract = instruction.contract
    errors = rules.check(draft, _product_rules(contract.product, instruction.operator),
                         _unit_limits(instruction.unit),
                         windows=_windows(contract), previous=previous)
    if errors:
        raise BadRequest("The dispatch does not satisfy the product's rules.", errors=errors)
    key = active_signing_key(instruction.operator)
    document = draft.document()
    token = jose.sign(document, signing.unlock(key.private_key_pem, _passphrase()), key.kid)
    try:
        with transaction.atomic():
            revision = DispatchRevision.objects.create(
                instruction=instruction, number=draft.revision, status=draft.status,
                urgency=draft.urgency, instruction_time=draft.instruction_time,
                service_start=draft.service_start, service_end=draft.service_end,
                document=document, signature=token, signing_key=key, issued_by=issued_by,
                reason=reason)
    except IntegrityError as exc:
        raise Conflict(f"revision {draft.revision} of {instruction} already exists") from exc
    audit.record_revision(revision)
    program = ensure_program(instruction.operator, contract.product).program
    unit = instruction.unit
    target = registry.unit_label(instruction.operator.code, unit.fsp.identifier, unit.reference)
    body = mapping.event_body(document, token, program_id=program.pk, targets=[target])
    instruction.event = vtn_services.save_event(
        caller=PROFILE_CALLER, data=_WIRE.event_in(body), event=instruction.event)
    instruction.revision = draft.revision
    instruction.status = draft.status
    instruction.urgency = draft.urgency
    instruction.service_start = draft.service_start
    instruction.service_end = draft.service_end
    instruction.save()
    return revision


def _resolve_contract(unit: DispatchUnit, product: Product | None,
                      contract: str | None) -> Contract:
    candidates = unit.contracts.select_related("product", "operator")
    if product is not None:
        candidates = candidates.filter(product=product)
    if contract:
        candidates = candidates.filter(identifier=contract)
    found = list(candidates[:2])
    what = f"unit {unit}" + (f" and product {product.code}" if product else "") + (
        f" named {contract!r}" if contract else "")
    if not found:
        raise BadRequest(f"no contract covers {what}")
    if len(found) > 1:
        raise BadRequest(f"several contracts cover {what}; name one")
    return found[0]


def _now(now: datetime | None) -> datetime:
    return rules.utc_seconds(now or timezone.now())


@transaction.atomic
def issue_dispatch(*, unit: DispatchUnit, service_start: datetime, service_end: datetime,
                   timings: list[rules.Timing], product: Product | None = None,
                   contract: str | None = None, reference: str | None = None,
                   status: str = "run", urgency: str | None = None, issued_by: str = "",
                   reason: str = "", now: datetime | None = None) -> DispatchInstruction:
    """Issue a new dispatch (revision 1) to ``unit`` under its contract for ``product``.

    Times are aware datetimes (kept in UTC, whole seconds); ``reference`` (the NO dispatch
    reference) is generated when not given and is unique per operator.
    """
    if status not in ("pre-notify", "run"):
        raise BadRequest("a new dispatch has status pre-notify or run")
    found = _resolve_contract(unit, product, contract)
    operator = found.operator
    if reference:
        try:
            registry.check_identifier(reference, "dispatch reference")
        except registry.RegistryError as exc:
            raise _registry_error(exc) from exc
    else:
        reference = f"{timezone.now():%Y%m%d}-{secrets.token_hex(4)}"
    if DispatchInstruction.objects.filter(operator=operator, reference=reference).exists():
        raise Conflict(f"{operator.code} already has a dispatch {reference!r}")
    instruction_time = _now(now)
    try:
        start, end = rules.utc_seconds(service_start), rules.utc_seconds(service_end)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    urgency = urgency or found.product.default_urgency
    if not timings and turns_to_zero(found.product.code):
        timings = [rules.Timing(setpoint_time=start, volume=Decimal(0),
                                setpoint_type="absolute")]  # turn to zero: export nothing
    instruction = DispatchInstruction(
        operator=operator, reference=reference, contract=found, unit=unit, revision=0,
        status=status, urgency=urgency, service_start=start, service_end=end)
    draft = rules.DispatchDraft(
        network_operator=operator.code, reference=reference, revision=1, status=status,
        urgency=urgency, fsp=unit.fsp.identifier, unit=unit.reference,
        contract=found.identifier, product=found.product.code,
        instruction_time=instruction_time, service_start=start, service_end=end,
        timings=tuple(_normalised(timings)))
    errors = rules.check(draft, _product_rules(found.product, operator), _unit_limits(unit),
                         windows=_windows(found))
    if errors:
        raise BadRequest("The dispatch does not satisfy the product's rules.", errors=errors)
    try:
        with transaction.atomic():
            instruction.save()
    except IntegrityError as exc:
        raise Conflict(f"{operator.code} already has a dispatch {reference!r}") from exc
    _publish(instruction, draft, None, issued_by=issued_by, reason=reason)
    return instruction


def _normalised(timings: list[rules.Timing]) -> list[rules.Timing]:
    try:
        return [rules.Timing(setpoint_time=rules.utc_seconds(t.setpoint_time),
                             volume=Decimal(t.volume), setpoint_type=t.setpoint_type,
                             service_type=t.service_type,
                             price_gbp_per_kwh=t.price_gbp_per_kwh) for t in timings]
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _locked(dispatch: DispatchInstruction, expected_revision: int | None) -> DispatchInstruction:
    locked = (DispatchInstruction.objects.select_for_update()
              .select_related("operator", "contract__product", "unit__fsp").get(pk=dispatch.pk))
    if expected_revision is not None and expected_revision != locked.revision:
        raise Conflict(f"dispatch {locked.operator.code}/{locked.reference} is at revision "
                       f"{locked.revision}, not {expected_revision}")
    if locked.status in rules.FINAL:
        raise Conflict(f"dispatch {locked.operator.code}/{locked.reference} ended with "
                       f"{locked.status} at revision {locked.revision}; issue a new dispatch")
    return locked


def _latest(dispatch: DispatchInstruction) -> DispatchRevision:
    return dispatch.revisions.latest("number")


@transaction.atomic
def revise_dispatch(*, dispatch: DispatchInstruction, service_start: datetime | None = None,
                    service_end: datetime | None = None,
                    timings: list[rules.Timing] | None = None, status: str | None = None,
                    urgency: str | None = None, expected_revision: int | None = None,
                    issued_by: str = "", reason: str = "",
                    now: datetime | None = None) -> DispatchRevision:
    """A new revision of ``dispatch``: what is not given carries over from the latest one.
    The revision number is the latest plus one, under a row lock, so it never repeats."""
    locked = _locked(dispatch, expected_revision)
    previous = draft_of(_latest(locked))
    if status in rules.FINAL:
        raise BadRequest("use stop (or emergency stop) to stop a dispatch")
    try:
        start = rules.utc_seconds(service_start) if service_start else previous.service_start
        end = rules.utc_seconds(service_end) if service_end else previous.service_end
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    draft = rules.DispatchDraft(
        **{**previous.__dict__, "revision": locked.revision + 1,
           "status": status or previous.status, "urgency": urgency or previous.urgency,
           "instruction_time": _now(now), "service_start": start, "service_end": end,
           "timings": tuple(_normalised(timings)) if timings is not None else previous.timings})
    return _publish(locked, draft, previous, issued_by=issued_by, reason=reason)


@transaction.atomic
def stop_dispatch(*, dispatch: DispatchInstruction, emergency: bool = False,
                  expected_revision: int | None = None, issued_by: str = "",
                  reason: str = "", now: datetime | None = None) -> DispatchRevision:
    """Stop (or emergency-stop) a dispatch: a final revision without setpoints."""
    locked = _locked(dispatch, expected_revision)
    previous = draft_of(_latest(locked))
    draft = rules.DispatchDraft(
        **{**previous.__dict__, "revision": locked.revision + 1,
           "status": "emergency-stop" if emergency else "stop",
           "urgency": "emergency" if emergency else previous.urgency,
           "instruction_time": _now(now), "timings": ()})
    return _publish(locked, draft, previous, issued_by=issued_by, reason=reason)


# --- FSP site signing keys ---------------------------------------------------------------------

def site_of_client(client_id: str) -> FspSite:
    """The FSP site whose VEN the OAuth2 client ``client_id`` is."""
    site = FspSite.objects.select_related("fsp__operator", "ven").filter(
        ven__client_id=client_id).first()
    if site is None:
        raise Forbidden("only the VEN of an onboarded FSP site may manage site signing keys")
    return site


def check_public_jwk(jwk: object) -> dict:
    """An Ed25519 public JWK (RFC 8037) with a kid; private material is refused."""
    try:
        return jose.check_public_jwk(jwk)
    except jose.JwkError as exc:
        raise BadRequest(str(exc)) from exc


@transaction.atomic
def register_site_key(*, site: FspSite, jwk: object) -> SiteSigningKey:
    """Register a public key the site signs acknowledgements with (kid unique per site)."""
    public = check_public_jwk(jwk)
    if SiteSigningKey.objects.filter(site=site, kid=public["kid"]).exists():
        raise Conflict(f"site {site} already has a key {public['kid']!r}")
    return SiteSigningKey.objects.create(site=site, kid=public["kid"], public_jwk=public)


@transaction.atomic
def revoke_site_key(*, site: FspSite, kid: str, now: datetime | None = None) -> SiteSigningKey:
    key = SiteSigningKey.objects.select_for_update().filter(site=site, kid=kid).first()
    if key is None:
        raise NotFound(f"site {site} has no key {kid!r}")
    if key.revoked_at is None:
        key.revoked_at = now or timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


# --- acknowledgements --------------------------------------------------------------------------

Outcome = Acknowledgement.Outcome


def _site_jwks(site: FspSite | None, at: datetime) -> dict:
    if site is None:
        return {"keys": []}
    keys = site.signing_keys.filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=at))
    # (a key revoked at or before ``at`` is unknown then; the audit verifier agrees)
    return {"keys": [key.public_jwk for key in keys]}


def _judge(claim: acks.AckClaim, instruction: DispatchInstruction, site: FspSite | None,
           at: datetime) -> tuple[str, str, dict | None, DispatchRevision]:
    """(outcome, detail, signed document or None, revision) of one acknowledgement."""
    current = _latest(instruction)
    named = instruction.revisions.filter(number=claim.revision).first() \
        if claim.revision is not None else None
    revision = named or current
    if not claim.jws:
        return Outcome.INVALID_SIGNATURE, f"no {acks.GB_ACK_JWS} payload", None, revision
    kid = jose.header_kid(claim.jws)
    if kid is None:
        return Outcome.INVALID_SIGNATURE, "not a compact JWS with a kid", None, revision
    jwks = _site_jwks(site, at)
    if not any(key["kid"] == kid for key in jwks["keys"]):
        return (Outcome.UNKNOWN_KEY, f"key {kid!r} is not a registered, unrevoked key of "
                f"the reporting site", None, revision)
    try:
        signed = jose.verify(claim.jws, jwks)
    except jose.SignatureError as exc:
        return Outcome.INVALID_SIGNATURE, str(exc), None, revision
    if claim.problems:
        return Outcome.READ_BACK_MISMATCH, "; ".join(claim.problems), signed, revision
    if signed != claim.read_back:
        return (Outcome.READ_BACK_MISMATCH, "the signed document is not the read-back in the "
                "report's payloads", signed, revision)
    if named is None:
        return (Outcome.READ_BACK_MISMATCH, f"dispatch {instruction.reference} has no "
                f"revision {claim.revision}", signed, revision)
    if named.number < current.number:
        return (Outcome.STALE_REVISION, f"revision {named.number} was superseded by "
                f"revision {current.number}", signed, revision)
    differences = acks.read_back_differences(claim.read_back, named.document)
    if differences:
        return Outcome.READ_BACK_MISMATCH, "; ".join(differences), signed, revision
    if named.acknowledgements.filter(stage=claim.stage.lower(),
                                     outcome=Outcome.ACCEPTED).exists():
        return (Outcome.DUPLICATE, f"revision {named.number} already has an accepted "
                f"{claim.stage} acknowledgement", signed, revision)
    return Outcome.ACCEPTED, "", signed, revision


@transaction.atomic
def record_acknowledgements(report: Report, *,
                             now: datetime | None = None) -> list[Acknowledgement]:
    """Check and record every acknowledgement in ``report`` (a report on a dispatch's
    event), each with its outcome and an audit entry. A report without
    acknowledgement intervals records nothing; an interval already recorded from the
    same report (the VEN re-sent the report with more intervals) is not recorded again."""
    instruction = (DispatchInstruction.objects.select_for_update()
                   .select_related("operator", "unit__site").filter(event_id=report.event_id)
                   .first())
    if instruction is None:
        return []
    at = now or timezone.now()
    site = FspSite.objects.filter(ven__client_id=report.client_id).first()
    recorded = []
    for payloads in acks.ack_intervals(report.resources):
        claim = acks.parse_claim(payloads)
        earlier = Acknowledgement.objects.filter(report_id=report.pk, jws=claim.jws)
        if any(ack.read_back == claim.read_back for ack in earlier):
            continue
        outcome, detail, signed, revision = _judge(claim, instruction, site, at)
        ack = Acknowledgement.objects.create(
            revision=revision, claimed_revision=claim.revision,
            stage=claim.stage.lower() if claim.stage in acks.STAGES else "",
            result=claim.outcome, reason=claim.reason, outcome=outcome, detail=detail,
            received_at=at, report_id=report.pk, client_id=report.client_id,
            kid=jose.header_kid(claim.jws) or "", jws=claim.jws,
            read_back=claim.read_back)
        audit.record_acknowledgement(ack, signed)
        recorded.append(ack)
    return recorded
