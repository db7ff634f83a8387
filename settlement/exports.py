"""Statement exports: canonical JSON (what the statement's sha256 is of), CSV lines, and
the UFTP (Shapeshifter) FlexSettlement message."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import date, datetime

from django.conf import settings

from settlement import statement
from vtn.errors import Conflict

CSV_COLUMNS = (
    "line", "kind", "dispatchRef", "revision", "unit", "periodStart", "periodEnd", "day",
    "period", "setpointType", "direction", "instructedKw", "overlapFraction", "baselineKw",
    "actualKw", "orderedKw", "deliveredKw", "overDeliveryKw", "deficiencyKw", "performance",
    "deliveredMwh", "declaredKw", "hours", "priceGbp", "priceBasis", "paymentGbp",
    "performanceReductionGbp", "penaltyGbp", "netGbp", "reason", "missingPeriods",
    # the instruction (urgency, where the price came from, emergency premium), the energy
    # short of the order, and reactive power lines (kVAr, MVArh)
    "urgency", "priceSource", "urgencyPremiumGbp", "deficiencyMwh", "instructedKvar",
    "baselineKvar", "actualKvar", "orderedKvar", "deliveredKvar", "deficiencyKvar",
    "deliveredMvarh", "deficiencyMvarh",
)
# The totals row: the statement total under each column that has one.
TOTAL_COLUMNS = {"deliveredMwh": "deliveredMwh", "paymentGbp": "utilisationGbp",
                 "performanceReductionGbp": "performanceReductionGbp",
                 "penaltyGbp": "penaltiesGbp", "netGbp": "netGbp",
                 "urgencyPremiumGbp": "urgencyPremiumGbp", "deficiencyMwh": "deficiencyMwh",
                 "deliveredMvarh": "reactiveDeliveredMvarh",
                 "deficiencyMvarh": "reactiveDeficiencyMvarh"}


def as_json(document: dict) -> bytes:
    return statement.canonical_bytes(document)


def as_csv(document: dict) -> bytes:
    """One row per statement line (held lines included, with their reason), then a totals
    row. Money in GBP, power in kW (reactive kVAr), energy in MWh (reactive MVArh); header
    row first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in document["lines"]:
        row = {**line, "missingPeriods": " ".join(line.get("missingPeriods", []))}
        writer.writerow(["" if row.get(c) is None else row.get(c, "") for c in CSV_COLUMNS])
    totals = document["totals"]
    writer.writerow(["total" if column == "line" else totals.get(TOTAL_COLUMNS.get(column, ""),
                                                                   "")
                     for column in CSV_COLUMNS])
    return out.getvalue().encode()


def _dns_label(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"


def as_uftp(document: dict, *, time_stamp: datetime | None = None) -> bytes:
    """The statement as a UFTP FlexSettlement (see :mod:`settlement.uftp`), from the
    operator's domain to the FSP's: settings ``SETTLEMENT_UFTP_SENDER_DOMAIN`` and
    ``SETTLEMENT_UFTP_RECIPIENT_DOMAIN``, where ``{operator}`` and ``{fsp}`` stand for the
    operator code and FSP identifier as DNS labels. The MessageID is derived from the
    statement's sha256, so exporting the same statement again gives the same message
    (a repeat to the receiver, not a new settlement); the TimeStamp is the export time
    (``time_stamp`` fixes it). Conflict (409) when no dispatch is settled yet."""
    # Imported here, not at the top: the UFTP message classes (shapeshifter-uftp brings
    # FastAPI, numpy and xsdata) take about a second to import, which every web worker and
    # management command would otherwise pay when the URLs load, for a rare export.
    from settlement import uftp

    names = {"operator": _dns_label(document["operator"]), "fsp": _dns_label(document["fsp"])}
    message_id = uuid.uuid5(uuid.NAMESPACE_URL,
                            f"urn:sha256:{statement.document_sha256(document)}")
    try:
        return uftp.as_flex_settlement(
            document, sender_domain=settings.SETTLEMENT_UFTP_SENDER_DOMAIN.format(**names),
            recipient_domain=settings.SETTLEMENT_UFTP_RECIPIENT_DOMAIN.format(**names),
            message_id=str(message_id), time_stamp=time_stamp)
    except uftp.NotExpressible as exc:
        raise Conflict(str(exc)) from exc


# Each export format: its media type and how a statement document is rendered in it.
FORMATS = {"json": ("application/json", as_json),
           "csv": ("text/csv; charset=utf-8", as_csv),
           "uftp": ("application/xml", as_uftp)}


def file_name(*, operator: str, contract: str, month: date, version: int, fmt: str) -> str:
    """The download name of a statement export, e.g. ``ENWL-C-DYN-2026-01-v2.csv``."""
    return f"{operator}-{contract}-{month:%Y-%m}-v{version}.{fmt}"
