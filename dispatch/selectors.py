"""Every read of the dispatch app with rules: lookups that report clearly, filters and the
published JWKS. Bodies are rendered by the API's serializers (``dispatch.api.serializers``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.utils import timezone

from dispatch import readings
from dispatch.comms import sites_with_intervals
from dispatch.models import (
    Acknowledgement,
    AvailabilityDeclaration,
    Contract,
    DispatchInstruction,
    DispatchUnit,
    FspSite,
    MeterReading,
    NetworkOperator,
    OperatorProgram,
    ReportIntake,
    SigningKey,
)
from dispatch.programs import product_parameter_settings
from dispatch.rules import iso
from vtn.errors import BadRequest, NotFound


def find_unit(reference: str, *, fsp: str | None = None,
              operator: str | None = None) -> DispatchUnit:
    """A unit by reference, or ``FSP/REF``; ``fsp`` and ``operator`` narrow an ambiguous one."""
    if "/" in reference and fsp is None:
        fsp, reference = reference.split("/", 1)
    units = DispatchUnit.objects.select_related("fsp__operator", "resource").filter(
        reference=reference)
    if fsp:
        units = units.filter(fsp__identifier=fsp)
    if operator:
        units = units.filter(fsp__operator__code=operator.upper())
    found = list(units[:2])
    if not found:
        raise NotFound(f"no dispatch unit {reference!r}" + (f" of FSP {fsp!r}" if fsp else ""))
    if len(found) > 1:
        raise BadRequest(f"unit reference {reference!r} is used by several FSPs; name the FSP")
    return found[0]


def find_operator(code: str) -> NetworkOperator:
    """The network operator with ``code`` (404 when the VTN does not have it)."""
    found = NetworkOperator.objects.filter(code=(code or "").upper()).first()
    if found is None:
        raise NotFound(f"no network operator {code!r}")
    return found


def product_parameter_rows() -> list:
    """Every operator product program with the parameters it applies (see
    :func:`dispatch.programs.product_parameter_settings`)."""
    return [product_parameter_settings(row.operator, row.product) for row in
            OperatorProgram.objects.select_related("operator", "product").order_by(
                "operator__code", "product__code")]


def find_dispatch(reference: str, *, operator: str | None = None) -> DispatchInstruction:
    """A dispatch by its NO dispatch reference (``operator`` narrows an ambiguous one)."""
    return _one_per_operator(DispatchInstruction.objects.select_related(
        "operator", "contract__product", "unit__fsp", "unit__site").filter(reference=reference),
        f"dispatch {reference!r}", operator)


def _one_per_operator(rows: QuerySet, what: str, operator: str | None):
    """The one row of ``rows`` (narrowed to ``operator``): 404 when none, 400 when the
    identifier is used by several operators and none was named."""
    if operator:
        rows = rows.filter(operator__code=operator.upper())
    found = list(rows[:2])
    if not found:
        raise NotFound(f"no {what}" + (f" of {operator}" if operator else ""))
    if len(found) > 1:
        raise BadRequest(f"{what} is used by several operators; name the operator")
    return found[0]


def dispatches(*, active_from: datetime | None = None,
               active_to: datetime | None = None) -> QuerySet[DispatchInstruction]:
    """Every dispatch, newest first; with ``active_from``/``active_to``, only those whose
    service period overlaps [active_from, active_to). The APIs narrow it further with
    ``dispatch.api.filters.DispatchFilterSet``."""
    queryset = DispatchInstruction.objects.select_related(
        "operator", "contract__product", "unit__fsp", "unit__site")
    if active_from:
        queryset = queryset.filter(service_end__gt=active_from)
    if active_to:
        queryset = queryset.filter(service_start__lt=active_to)
    return queryset.order_by("-created", "-id")


def published_keys(now: datetime | None = None) -> QuerySet[SigningKey]:
    """Signing keys whose public half is published: active ones and retired ones whose
    verification period has not ended."""
    now = now or timezone.now()
    return SigningKey.objects.filter(Q(verify_until__isnull=True) | Q(verify_until__gt=now))


def jwks(now: datetime | None = None) -> dict:
    return {"keys": [key.public_jwk for key in published_keys(now).order_by("created", "id")]}


def acknowledgement_state(acks: list[Acknowledgement]) -> dict:
    """When each stage was first accepted (null: not yet), the actioned result, and the
    reason of a refusal (null: not refused)."""
    state: dict = {"received": None, "actioned": None, "actionedResult": None,
                   "refused": None, "refusedReason": None}
    for ack in acks:
        if ack.outcome == Acknowledgement.Outcome.ACCEPTED and state.get(ack.stage) is None:
            state[ack.stage] = iso(ack.received_at)
            if ack.stage == Acknowledgement.Stage.ACTIONED:
                state["actionedResult"] = ack.result
            elif ack.stage == Acknowledgement.Stage.REFUSED:
                state["refusedReason"] = ack.reason
    return state


# --- comms --------------------------------------------------------------------------------------

def sites() -> QuerySet[FspSite]:
    return sites_with_intervals().order_by("fsp__operator__code", "fsp__identifier", "name")


# --- meter readings, availability declarations, report intakes ----------------------------------

def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def meter_readings() -> QuerySet[MeterReading]:
    """Every stored meter reading, every version, by unit, type and period (narrowed by
    ``dispatch.api.filters.MeterReadingFilterSet``)."""
    return MeterReading.objects.select_related("unit__fsp__operator", "intake").order_by(
        "unit__fsp__identifier", "unit__reference", "reading_type", "start", "version")


def intakes() -> QuerySet[ReportIntake]:
    """Every report intake, newest first."""
    return ReportIntake.objects.select_related("site__fsp__operator").order_by(
        "-received_at", "-id")


def find_contract(identifier: str, *, operator: str | None = None) -> Contract:
    return _one_per_operator(Contract.objects.select_related("operator", "fsp", "product").filter(
        identifier=identifier), f"contract {identifier!r}", operator)


def contracted_windows(contract: Contract, start: datetime,
                       end: datetime) -> list[tuple[datetime, datetime]]:
    """The contract's service windows clipped to [start, end); a contract without windows
    is available any time, so the whole range."""
    if not contract.service_windows:
        return [(start, end)]
    windows = []
    for window in contract.service_windows:
        left = max(start, datetime.fromisoformat(window["start"].replace("Z", "+00:00")))
        right = min(end, datetime.fromisoformat(window["end"].replace("Z", "+00:00")))
        if left < right:
            windows.append((left, right))
    return sorted(windows)


def availability(contract: Contract, start: datetime, end: datetime) -> dict:
    """What the FSP declared for the contract's units against what the contract asks for,
    over its service windows within [start, end)."""
    units = list(contract.units.order_by("reference"))
    capacities = {unit.reference: unit.capacity_kw for unit in units}
    contracted = contract.capacity_kw if contract.capacity_kw is not None \
        else sum(capacities.values(), Decimal(0))
    windows = contracted_windows(contract, start, end)
    current = AvailabilityDeclaration.objects.filter(
        unit__in=units, superseded_at__isnull=True, start__lt=end, end__gt=start)
    by_unit: dict[str, list] = {unit.reference: [] for unit in units}
    for row in current.select_related("unit"):
        by_unit[row.unit.reference].append((row.start, row.end, row.available_kw,
                                            row.declared_at))
    out_windows, hours, declared_mwh, contracted_mwh = [], Decimal(0), Decimal(0), Decimal(0)
    for left, right in windows:
        profiles = {unit: readings.declared_profile(rows, left, right)
                    for unit, rows in by_unit.items()}
        spans = readings.declared_against_contracted(profiles, capacities, contracted)
        out_windows.append({"start": iso(left), "end": iso(right), "spans": [
            {"start": iso(s.start), "end": iso(s.end), "declaredKw": _amount(s.declared_kw),
             "contractedKw": _amount(s.contracted_kw), "shortfallKw": _amount(s.shortfall_kw),
             "units": {unit: _amount(kw) for unit, kw in s.units_kw.items()}}
            for s in spans]})
        for s in spans:
            hours += s.hours
            declared_mwh += min(s.declared_kw, s.contracted_kw) * s.hours / 1000
            contracted_mwh += s.contracted_kw * s.hours / 1000
    return {
        "operator": contract.operator.code, "contract": contract.identifier,
        "fsp": contract.fsp.identifier, "product": contract.product.code,
        "from": iso(start), "to": iso(end), "contractedKw": _amount(contracted),
        "units": [{"reference": unit.reference, "capacityKw": _amount(unit.capacity_kw)}
                  for unit in units],
        "windows": out_windows,
        "summary": {
            "contractedHours": _amount(hours.quantize(Decimal("0.001"))),
            "contractedMwh": _amount(contracted_mwh.quantize(Decimal("0.001"))),
            "declaredMwh": _amount(declared_mwh.quantize(Decimal("0.001"))),
            "coverage": None if not contracted_mwh else
            _amount((declared_mwh / contracted_mwh).quantize(Decimal("0.0001")))},
    }
