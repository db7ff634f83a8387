"""Statement exports: canonical JSON (what the statement's sha256 is of) and CSV lines."""

from __future__ import annotations

import csv
import io

from settlement import statement

CSV_COLUMNS = (
    "line", "kind", "dispatchRef", "revision", "unit", "periodStart", "periodEnd", "day",
    "period", "setpointType", "direction", "instructedKw", "overlapFraction", "baselineKw",
    "actualKw", "orderedKw", "deliveredKw", "overDeliveryKw", "deficiencyKw", "performance",
    "deliveredMwh", "declaredKw", "hours", "priceGbp", "priceBasis", "paymentGbp",
    "performanceReductionGbp", "penaltyGbp", "netGbp", "reason", "missingPeriods",
)


def as_json(document: dict) -> bytes:
    return statement.canonical_bytes(document)


def as_csv(document: dict) -> bytes:
    """One row per statement line (held lines included, with their reason), then a totals
    row. Money in GBP, power in kW, energy in MWh; header row first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in document["lines"]:
        row = {**line, "missingPeriods": " ".join(line.get("missingPeriods", []))}
        writer.writerow(["" if row.get(c) is None else row.get(c, "") for c in CSV_COLUMNS])
    totals = document["totals"]
    writer.writerow(["total", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "",
                     "", "", "", totals["deliveredMwh"], "", "", "", "",
                     totals["utilisationGbp"], totals["performanceReductionGbp"],
                     totals["penaltiesGbp"], totals["netGbp"], "", ""])
    return out.getvalue().encode()
