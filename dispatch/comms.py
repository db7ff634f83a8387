"""Heartbeats and comms loss of FSP sites (docs/gb-dispatch-profile.md, "Heartbeats and
comms loss").

- **Last seen**: every authenticated request of a site's VEN (a poll, a report, anything)
  moves the site's ``last_seen`` -- at most once per ``DISPATCH_LAST_SEEN_RESOLUTION_SECONDS``
  per client and web process, with one UPDATE, so the poll path stays free of queries
  in between (:func:`seen`, called by :class:`dispatch.middleware.LastSeenMiddleware`).
  Which site a VEN belongs to is read for all sites at once, at most once per resolution.
- **Heartbeat**: a report on the FSP's heartbeat event (program ``GB-<OP>-HEARTBEAT``)
  counts as seen and may carry each unit's ``OPERATING_STATE`` and ``GB_AVAILABLE_KW``.
- **Comms loss**: :func:`check_comms` (a Celery beat task every 30 s) marks a site and its
  units ``comms_lost`` when it was not seen within the shortest heartbeat interval of its
  contracted products times ``DISPATCH_COMMS_GRACE_FACTOR``, not counting the VTN's own
  outages (vtn/serving.py: no web process was serving, so no request could reach it);
  the next request or heartbeat restores it at once. Every change is a
  :class:`CommsTransition`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from dispatch.models import (
    CommsState,
    CommsTransition,
    Contract,
    DispatchUnit,
    FspSite,
    HeartbeatRecord,
    OperatorProgram,
)
from gbflex_profile.vocabulary import GB_AVAILABLE_KW, GB_OFFLINE_LOG, OPERATING_STATE
from vtn import generations, serving, timing
from vtn.models import Report

# OPERATING_STATE values (OpenADR 3.1.1, Table 4 enumerations).
OPERATING_STATES = (
    "NORMAL", "ERROR", "IDLE_NORMAL", "RUNNING_NORMAL", "RUNNING_CURTAILED",
    "RUNNING_HEIGHTENED", "IDLE_CURTAILED", "SGD_ERROR_CONDITION", "IDLE_HEIGHTENED",
    "IDLE_OPTED_OUT", "RUNNING_OPTED_OUT",
)

# client_id -> (site id or None, when the next write is due). Per process, like the
# token cache: cleared with every ProcessCache.
_seen: generations.ProcessCache[str, tuple[int | None, float]] = generations.ProcessCache()
# "sites" -> (every site by its VEN's client_id, when to read them again); see _sites.
_site_map: generations.ProcessCache[str, tuple[dict[str, int], float]] = \
    generations.ProcessCache()


def clock() -> datetime:
    """Now; tests replace it to control time."""
    return timezone.now()


def resolution_seconds() -> float:
    return float(getattr(settings, "DISPATCH_LAST_SEEN_RESOLUTION_SECONDS", 15))


def grace_factor() -> float:
    return float(getattr(settings, "DISPATCH_COMMS_GRACE_FACTOR", 1.5))


# --- last seen (the request hook) --------------------------------------------------------------

def seen(client_id: str, now: datetime | None = None) -> None:
    """Note that the VEN client ``client_id`` was just heard from. Costs nothing while its
    last write is younger than the resolution; otherwise one UPDATE (and, when the site
    was not online, a restore)."""
    now = now or clock()
    stamp = now.timestamp()
    entry = _seen.get(client_id)
    if entry is not None and entry[1] > stamp:
        return
    site_id = entry[0] if entry is not None else None
    if site_id is None:
        site_id = _sites(stamp).get(client_id)
    _seen.put(client_id, (site_id, stamp + resolution_seconds()))
    if site_id is not None:
        mark_seen(site_id, now)


def _sites(stamp: float) -> dict[str, int]:
    """VEN client_id -> its site, for this process: read in one query for every site at
    most once per resolution, so a VEN without a site (or whose site is new) costs no
    query of its own and a new site is found within the same resolution as before."""
    known = _site_map.get("sites")
    if known is None or known[1] <= stamp:
        sites = dict(FspSite.objects.order_by("pk").values_list("ven__client_id", "pk"))
        known = (sites, stamp + resolution_seconds())
        _site_map.put("sites", known)
    return known[0]


def mark_seen(site_id: int, now: datetime) -> None:
    """Move ``last_seen`` (never backwards); an online site costs one UPDATE."""
    updated = FspSite.objects.filter(pk=site_id, comms_state=CommsState.ONLINE).update(
        last_seen=now)
    if not updated:
        _restore(site_id, now)


@transaction.atomic
def _restore(site_id: int, now: datetime) -> None:
    site = FspSite.objects.select_for_update().filter(pk=site_id).first()
    if site is None:
        return
    if site.last_seen is None or site.last_seen < now:
        site.last_seen = now
    if site.comms_state != CommsState.ONLINE:
        _transition(site, CommsState.ONLINE, now, "heard from the site's VEN")
    site.save(update_fields=["last_seen", "comms_state", "comms_changed"])


def _transition(site: FspSite, to: str, now: datetime, detail: str) -> CommsTransition:
    """Record a change (the caller saves ``site``) and move its units with it."""
    change = CommsTransition.objects.create(site=site, from_state=site.comms_state, to_state=to,
                                            at=now, last_seen=site.last_seen, detail=detail)
    site.comms_state = to
    site.comms_changed = now
    DispatchUnit.objects.filter(site=site).update(comms_state=to)
    # Consequences: an entry in the audit chain and an alert to the operator.
    from dispatch import alerts, audit

    if CommsState.COMMS_LOST in (change.from_state, change.to_state):
        audit.record_comms_change(change)
        alerts.on_comms_transition(change)
    return change


# --- heartbeat reports -------------------------------------------------------------------------

def _unit_state(payloads: list[Mapping]) -> dict:
    state: dict = {}
    for payload in payloads:
        values = list(payload.get("values") or [])
        if payload.get("type") == OPERATING_STATE and values:
            if str(values[0]).upper() in OPERATING_STATES:
                state["operatingState"] = str(values[0]).upper()
        elif payload.get("type") == GB_AVAILABLE_KW and values:
            try:
                value = Decimal(str(values[0]))
            except InvalidOperation:
                continue
            if value.is_finite() and value >= 0:
                state["availableKw"] = str(value)
    return state


def _offline_log(resource: Mapping) -> dict | None:
    """The agent's outage log carried by a resource of a heartbeat report, if any (a JSON
    object with ``offlineFrom``, ``offlineUntil`` and ``entries``)."""
    for interval in resource.get("intervals") or []:
        for payload in interval.get("payloads") or []:
            values = list(payload.get("values") or [])
            if payload.get("type") != GB_OFFLINE_LOG or not values:
                continue
            try:
                log = json.loads(str(values[0]))
            except ValueError:
                return None
            if isinstance(log, dict) and isinstance(log.get("entries"), list):
                return {"offlineFrom": log.get("offlineFrom"),
                        "offlineUntil": log.get("offlineUntil"),
                        "entries": log["entries"][:500]}
    return None


def record_heartbeat(report: Report, *, now: datetime | None = None) -> HeartbeatRecord | None:
    """Record a report on a heartbeat event by a site's VEN: the site is seen, and each
    resource naming one of the site's units updates that unit's operating state and
    available kW (the last interval that carries them wins). The caller has classified
    ``report`` as a heartbeat (:mod:`dispatch.report_routing`). None when no FSP site's
    VEN sent it."""
    site = FspSite.objects.filter(ven__client_id=report.client_id).first()
    if site is None:
        return None
    now = now or clock()
    units = {unit.reference: unit for unit in site.units.all()}
    said: dict[str, dict] = {}
    offline_log = None
    for resource in report.resources or []:
        reference = resource.get("resourceName")
        if reference not in units:
            continue
        offline_log = offline_log or _offline_log(resource)
        state: dict = {}
        for interval in resource.get("intervals") or []:
            state |= _unit_state(interval.get("payloads") or [])
        said[reference] = state
    with transaction.atomic():
        record = HeartbeatRecord.objects.create(site=site, received_at=now, report_id=report.pk,
                                                client_id=report.client_id, units=said,
                                                offline_log=offline_log)
        for reference, state in said.items():
            unit = units[reference]
            if "operatingState" in state:
                unit.operating_state = state["operatingState"]
            if "availableKw" in state:
                unit.available_kw = Decimal(state["availableKw"])
            unit.state_reported_at = now
            unit.save(update_fields=["operating_state", "available_kw", "state_reported_at"])
        mark_seen(site.pk, now)
    return record


# --- comms monitoring --------------------------------------------------------------------------

def sites_with_intervals():
    """Sites annotated with ``interval``: the shortest heartbeat interval of the products
    their units are contracted for (null: no heartbeat expected)."""
    return FspSite.objects.select_related("fsp__operator").annotate(
        interval=Min("units__contracts__product__heartbeat_interval"))


def _operator_intervals() -> dict[int, dict[int, timedelta | None]]:
    """Heartbeat intervals operators set for their products: operator id -> product id ->
    interval (None: no heartbeat expected)."""
    found: dict[int, dict[int, timedelta | None]] = {}
    for operator, product, parameters in OperatorProgram.objects.values_list(
            "operator_id", "product_id", "parameters"):
        if "heartbeat_interval" in (parameters or {}):
            text = parameters["heartbeat_interval"]
            found.setdefault(operator, {})[product] = (
                None if text is None else timing.parse_duration(text))
    return found


def _site_interval(site: FspSite, own: dict[int, timedelta | None]) -> timedelta | None:
    """The shortest heartbeat interval of the site's contracted products, with the
    operator's own values where it set them."""
    intervals = [own.get(product, default) for product, default in Contract.objects.filter(
        units__site=site).values_list("product_id", "product__heartbeat_interval").distinct()]
    return min((i for i in intervals if i is not None), default=None)


def effective_interval(site: FspSite) -> timedelta | None:
    """The heartbeat interval ``site`` is held to: the shortest of its contracted
    products', with its operator's own values where it set them."""
    own = _operator_intervals().get(site.fsp.operator_id)
    if own is None and hasattr(site, "interval"):
        return site.interval  # annotated by sites_with_intervals: the products' defaults
    return _site_interval(site, own or {})


def check_comms(now: datetime | None = None) -> list[CommsTransition]:
    """Mark sites not seen within interval x grace as comms lost, and sites seen again
    as online. Idempotent: a site already in the right state is left alone."""
    now = now or clock()
    factor = grace_factor()
    changes = []
    own = _operator_intervals()
    query = sites_with_intervals()
    if not own:
        query = query.filter(interval__isnull=False)
    sites = list(query)
    earliest = min((site.last_seen or site.created for site in sites), default=now)
    vtn_outages = serving.outages(earliest, now)
    for site in sites:
        interval = (_site_interval(site, own[site.fsp.operator_id])
                    if site.fsp.operator_id in own else site.interval)
        if interval is None:
            continue
        allowed = interval * factor
        seen_at = site.last_seen or site.created
        # Time the VTN itself was not serving is nobody's silence.
        excused = serving.overlap(vtn_outages, seen_at, now)
        lost = now - seen_at - excused > allowed
        if lost and site.comms_state != CommsState.COMMS_LOST:
            target, detail = CommsState.COMMS_LOST, f"not seen within {allowed}"
            if excused:
                detail += f" (not counting {excused} when the VTN was not serving)"
        elif not lost and site.last_seen is not None and site.comms_state != CommsState.ONLINE:
            target, detail = CommsState.ONLINE, "seen within the heartbeat interval"
        else:
            continue
        with transaction.atomic():
            locked = FspSite.objects.select_for_update().get(pk=site.pk)
            if locked.comms_state == target or locked.last_seen != site.last_seen:
                continue  # someone else moved it meanwhile; the next run looks again
            changes.append(_transition(locked, target, now, detail))
            locked.save(update_fields=["comms_state", "comms_changed"])
    return changes
