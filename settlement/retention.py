"""Which raw meter readings settlement still needs, so that the dispatch app's purge
(``dispatch/retention.py``) keeps them: every reading of a contracted unit from the
baseline look-back before a statement's month to its end, for every statement that is
not superseded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import Q

from dispatch.models import Contract
from settlement.models import Statement

# Readings this long before a statement's month are kept with it (the longest baseline
# look-back, 30 days, plus margin).
STATEMENT_LOOKBACK = timedelta(days=45)


def readings_kept_for_statements() -> Q:
    """A condition on MeterReading matching the readings some kept statement needs."""
    kept = Q(pk__in=[])
    rows = list(Statement.objects.exclude(status=Statement.Status.SUPERSEDED).values_list(
        "contract_id", "month").distinct())
    units = {c.pk: list(c.units.values_list("pk", flat=True))
             for c in Contract.objects.filter(pk__in={contract for contract, _ in rows})}
    for contract, month in rows:
        # the London month, with a day's margin either side for the time zone
        first = datetime(month.year, month.month, 1, tzinfo=UTC)
        after = (first + timedelta(days=32)).replace(day=1)
        kept |= Q(unit_id__in=units.get(contract, []),
                  start__gte=first - STATEMENT_LOOKBACK - timedelta(days=1),
                  start__lt=after + timedelta(days=1))
    return kept
