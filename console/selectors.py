"""What the console pages show, composed from the dispatch, settlement and vtn selectors.

Nothing here decides a rule of its own: comms states, acknowledgement states, certificate
expiry and statement visibility come from the apps that own them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from dispatch import alerts as alerts_selectors
from dispatch import selectors as dispatch_selectors
from dispatch.api.serializers import DispatchHistorySerializer, SiteSerializer
from dispatch.models import (
    Acknowledgement,
    CommsState,
    Contract,
    DispatchInstruction,
    DispatchRevision,
    DispatchUnit,
    Fsp,
    HeartbeatRecord,
)
from dispatch.rules import FINAL
from dispatch.scope import Scope
from settlement import selectors as settlement_selectors
from settlement.filters import StatementFilterSet
from settlement.models import Statement
from vtn import serving
from vtn.api.query_filters import filtered
from vtn.auth import certificates

# How far back the dashboard looks for acknowledgements still owed and for alerts.
RECENT = timedelta(days=1)
# How far ahead "coming up" reaches.
AHEAD = timedelta(days=2)
# The dashboard's sites table: at most this many, in this order of comms state.
DASHBOARD_SITES = 20
ATTENTION = (CommsState.COMMS_LOST, CommsState.UNKNOWN, CommsState.ONLINE)


# --- dashboard --------------------------------------------------------------------------------

def site_rows(scope: Scope) -> list[dict]:
    """Every FSP site in scope as the dispatch API shows it (state, last seen, units)."""
    return list(SiteSerializer(dispatch_selectors.sites(scope).select_related(
        "fsp__operator"), many=True, transitions=5).data)


def comms_counts(sites: list[dict]) -> dict:
    """Sites and units per comms state."""
    counts = {state: {"sites": 0, "units": 0} for state in CommsState.values}
    for site in sites:
        counts[site["state"]]["sites"] += 1
        for unit in site["units"]:
            counts[unit["commsState"]]["units"] += 1
    return counts


def running_dispatches(now: datetime, scope: Scope) -> list[DispatchInstruction]:
    """Dispatches whose service period contains now and that have not been stopped."""
    return [d for d in dispatch_selectors.dispatches(active_from=now, active_to=now,
                                                          scope=scope)
            if d.status not in FINAL and d.service_start <= now]


def upcoming_dispatches(now: datetime, scope: Scope) -> list[DispatchInstruction]:
    """Dispatches starting within the next ``AHEAD`` that have not been stopped."""
    rows = [d for d in dispatch_selectors.dispatches(active_from=now,
                                                     active_to=now + AHEAD, scope=scope)
            if d.status not in FINAL and d.service_start > now]
    return sorted(rows, key=lambda d: d.service_start)


def outstanding_acknowledgements(now: datetime, scope: Scope) -> list[dict]:
    """Current revisions issued within ``RECENT`` (or of dispatches not yet ended) that lack
    an accepted RECEIVED or ACTIONED acknowledgement."""
    recent = dispatch_selectors.dispatches(active_from=now - RECENT, scope=scope)
    rows = []
    for dispatch in recent:
        revision = (DispatchRevision.objects.filter(instruction=dispatch)
                    .order_by("-number").first())
        if revision is None:
            continue
        state = dispatch_selectors.acknowledgement_state(
            list(revision.acknowledgements.order_by("received_at", "id")))
        if state["refused"]:
            continue  # answered: shown as an alert instead
        missing = [stage for stage in ("received", "actioned") if state[stage] is None]
        if missing:
            rows.append({"dispatch": dispatch, "revision": revision, "missing": missing,
                         "waiting": now - revision.created})
    return rows


def expiring_certificates() -> list[dict]:
    """Certificates (not revoked) expiring within ``VTN_CERT_EXPIRY_WARNING_DAYS`` or
    already expired, as ``pki list`` flags them."""
    return [row for row in certificates.list_certificates()
            if not row["revoked"] and (row["expiring"] or row["expired"])]


def alerts(sites: list[dict], now: datetime, scope: Scope) -> list[dict]:
    """Sites with comms lost, and acknowledgements within ``RECENT`` that were refused by
    the FSP or not accepted by the VTN (bad signature, read-back mismatch, ...)."""
    found = [{"kind": "comms lost", "what": site["site"],
              "detail": f"last seen {site['lastSeen'] or 'never'}", "link": None}
             for site in sites if site["state"] == CommsState.COMMS_LOST]
    acks = (Acknowledgement.objects.select_related("revision__instruction__operator")
            .filter(received_at__gte=now - RECENT,
                    revision__instruction__operator__code__in=scope.operators)
            .exclude(outcome=Acknowledgement.Outcome.ACCEPTED,
                     stage__in=[Acknowledgement.Stage.RECEIVED, Acknowledgement.Stage.ACTIONED])
            .exclude(outcome=Acknowledgement.Outcome.DUPLICATE)  # a resend, not a problem
            .order_by("-received_at")[:50])
    for ack in acks:
        instruction = ack.revision.instruction
        refused = ack.stage == Acknowledgement.Stage.REFUSED and \
            ack.outcome == Acknowledgement.Outcome.ACCEPTED
        found.append({
            "kind": "refused" if refused else f"acknowledgement {ack.outcome.replace('_', ' ')}",
            "what": f"{instruction.operator.code}/{instruction.reference} "
                    f"revision {ack.revision.number}",
            "detail": ack.reason if refused else ack.detail,
            "link": (instruction.operator.code, instruction.reference)})
    return found


def dashboard(now: datetime | None = None, *, scope: Scope) -> dict:
    """What the dashboard shows of the operators in ``scope``; its sites table lists at most
    ``DASHBOARD_SITES``, those needing attention first (comms lost, then unknown), the
    registry lists them all."""
    now = now or timezone.now()
    sites = site_rows(scope)
    attention = sorted(sites, key=lambda site: (ATTENTION.index(site["state"])
                                                if site["state"] in ATTENTION else 9,
                                                site["site"]))
    return {"now": now, "sites": attention[:DASHBOARD_SITES], "sites_total": len(sites),
            "comms": comms_counts(sites),
            "running": running_dispatches(now, scope),
            "upcoming": upcoming_dispatches(now, scope),
            "outstanding": outstanding_acknowledgements(now, scope),
            "certificates": expiring_certificates(), "alerts": alerts(sites, now, scope),
            "vtn_outages": vtn_outages(now),
            "operator_alerts": list(alerts_selectors.visible(scope.operators).filter(
                raised_at__gte=now - RECENT)[:20])}


def vtn_outages(now: datetime, days: int = 7) -> list[dict]:
    """The VTN's own outages (no web process serving) in the last ``days``, newest first:
    spans the comms check does not count against FSP sites."""
    spans = serving.outages(now - timedelta(days=days), now)
    return [{"start": start, "end": end, "ongoing": end >= now,
             "minutes": round((end - start).total_seconds() / 60, 1)}
            for start, end in reversed(spans)]


# --- registry ---------------------------------------------------------------------------------

def registry(scope: Scope) -> dict:
    """The registry's four lists (of the operators in ``scope``) as querysets (the page
    filters and pages each)."""
    codes = scope.operators
    return {
        "fsps": Fsp.objects.select_related("operator").filter(operator__code__in=codes)
        .order_by("operator__code", "identifier"),
        "sites": dispatch_selectors.sites(scope).select_related("fsp__operator")
        .order_by("fsp__operator__code", "fsp__identifier", "name"),
        "units": DispatchUnit.objects.select_related("fsp__operator", "site")
        .filter(fsp__operator__code__in=codes)
        .order_by("fsp__operator__code", "fsp__identifier", "reference"),
        "contracts": Contract.objects.select_related("operator", "fsp", "product")
        .filter(operator__code__in=codes)
        .prefetch_related("units").order_by("operator__code", "identifier"),
    }


# --- dispatches -------------------------------------------------------------------------------

def _seconds_after(later: str | None, earlier: str | None) -> int | None:
    if not later or not earlier:
        return None
    return int((datetime.fromisoformat(later.replace("Z", "+00:00"))
                - datetime.fromisoformat(earlier.replace("Z", "+00:00"))).total_seconds())


def timeline(dispatch: DispatchInstruction) -> dict:
    """A dispatch as the API shows it, every revision with its acknowledgements and each
    acknowledgement's delay after its revision's instruction time (the time the signed
    document carries, which is also when it was issued, unless it was issued with a past
    time, as the sandbox's demo history is), plus the site's heartbeats and comms."""
    body = DispatchHistorySerializer(dispatch).data
    body["updated"] = timezone.now()
    for revision in body["revisions"]:
        for ack in revision["acknowledgements"]:
            ack["afterSeconds"] = _seconds_after(ack["receivedAt"],
                                                 revision["instructionTime"])
    site = dispatch.unit.site
    body["site"] = SiteSerializer(site, transitions=10).data
    body["heartbeats"] = list(HeartbeatRecord.objects.filter(site=site)
                              .order_by("-received_at", "-id")[:10])
    return body


# --- settlement -------------------------------------------------------------------------------

def statements(filters: dict, scope: Scope) -> QuerySet[Statement]:
    """The statements of the operators in ``scope`` (the console is the operator),
    narrowed by ``filters`` (the parameters of ``settlement.filters.StatementFilterSet``)."""
    return filtered(StatementFilterSet, filters, settlement_selectors.visible_statements(
        client_id="", is_operator=True, scope=scope))


def find_statement(statement_id: int, scope: Scope) -> Statement:
    return settlement_selectors.find_statement(str(statement_id), client_id="",
                                               is_operator=True, scope=scope)


def statement_dispatches(document: dict) -> dict[str, list[dict]]:
    """The statement's utilisation lines grouped by dispatch reference, in period order."""
    grouped: dict[str, list[dict]] = {}
    for line in document.get("lines", []):
        if line.get("kind") == "utilisation":
            grouped.setdefault(line["dispatchRef"], []).append(line)
    for lines in grouped.values():
        lines.sort(key=lambda line: line["periodStart"])
    return grouped


# Every column of the statement page's line table, in order: the document's key and its
# heading. Each line kind fills only some of them (a held line has no figures).
LINE_COLUMNS = (("urgency", "Urgency"), ("baselineKw", "Baseline kW"),
                ("actualKw", "Actual kW"), ("orderedKw", "Ordered kW"),
                ("deliveredKw", "Delivered kW"), ("deficiencyKw", "Deficiency kW"),
                ("actualKvar", "Actual kVAr"), ("orderedKvar", "Ordered kVAr"),
                ("deliveredKvar", "Delivered kVAr"), ("declaredKw", "Declared kW"),
                ("urgencyPremiumGbp", "Premium GBP"), ("netGbp", "Net GBP"))


def statement_lines(document: dict) -> list[dict]:
    """The statement's lines as the page's table shows them: every line with every column
    (empty where its kind has no such figure), so a held line (no figures, a reason and the
    periods it misses) reads as well as a priced one."""
    rows = []
    for line in document.get("lines", []):
        reason = line.get("reason") or ""
        missing = line.get("missingPeriods") or []
        rows.append({
            "line": line.get("line"), "kind": line.get("kind", ""),
            "dispatchRef": line.get("dispatchRef") or "", "unit": line.get("unit", ""),
            "periodStart": line.get("periodStart") or "",
            "figures": [line.get(key) or "" for key, _ in LINE_COLUMNS],
            "reason": reason, "missingPeriods": missing})
    return rows
