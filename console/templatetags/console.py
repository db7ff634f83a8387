"""Template filters every console page shares: one timestamp format and human labels for
the codes and keys the services and the API use."""

from __future__ import annotations

from datetime import UTC, date, datetime

from django import template

register = template.Library()

# The one timestamp format of the console: always UTC, 24-hour, to the second (the
# dispatch timeline and the audit log need seconds), e.g. "2026-11-29 14:30:05 UTC".
TIMESTAMP = "%Y-%m-%d %H:%M:%S UTC"

# Codes and keys shown to people, in words. Anything not listed is shown with its
# underscores and camel case turned into words (``_words``).
LABELS = {
    # comms states
    "online": "online", "comms_lost": "comms lost", "unknown": "unknown",
    # audit kinds
    "revision_issued": "revision issued", "ack_recorded": "acknowledgement recorded",
    # acknowledgement outcomes
    "accepted": "accepted", "duplicate": "duplicate", "invalid_signature": "invalid signature",
    "unknown_key": "unknown key", "read_back_mismatch": "read-back mismatch",
    "stale_revision": "stale revision",
    # dispatch statuses and setpoints
    "run": "run", "pre-notify": "pre-notify", "stop": "stop",
    "emergency-stop": "emergency stop", "delta": "delta", "absolute": "absolute",
    # statement totals and lines
    "availabilityGbp": "Availability (GBP)", "utilisationGbp": "Utilisation (GBP)",
    "performanceReductionGbp": "Performance reduction (GBP)",
    "penaltiesGbp": "Deficiency penalties (GBP)", "netGbp": "Net (GBP)",
    "heldLines": "Held lines", "deliveredMwh": "Delivered (MWh)",
    "deficiencyMwh": "Power deficiency (MWh)", "urgencyPremiumGbp": "Emergency premium (GBP)",
    "reactiveDeliveredMvarh": "Reactive delivered (MVArh)",
    "reactiveDeficiencyMvarh": "Reactive deficiency (MVArh)",
    "availability": "availability",
    "utilisation": "utilisation", "held": "held", "reactive": "reactive",
}


def _words(code: str) -> str:
    out: list[str] = []
    for char in code:
        if char.isupper() and out and out[-1] != " ":
            out.append(" ")
        out.append(" " if char in "_" else char.lower())
    text = "".join(out).replace(" gbp", " (GBP)").replace(" mwh", " (MWh)") \
        .replace(" kw", " (kW)")
    return text


@register.filter
def label(code: object) -> str:
    """A code or key in words: ``comms_lost`` -> ``comms lost``, ``heldLines`` ->
    ``Held lines``."""
    if code in (None, ""):
        return ""
    text = str(code)
    return LABELS.get(text) or _words(text)


def as_utc(value: object) -> datetime | None:
    """A datetime, a date or an RFC 3339 string as an aware UTC datetime (None if it is
    none of these)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return as_utc(parsed)
    return None


@register.filter
def utc(value: object, empty: str = "") -> str:
    """The console's one timestamp format, ``2026-11-29 14:30:05 UTC``; ``empty`` when
    there is no time (a text that is not a time is shown as it is)."""
    moment = as_utc(value)
    if moment is None:
        return str(value) if value not in (None, "") else empty
    return moment.strftime(TIMESTAMP)


@register.filter
def unit_report(state: object) -> str:
    """What a heartbeat said of one unit, in words (``{}``: nothing reported)."""
    if not isinstance(state, dict) or not state:
        return "no state reported"
    parts = []
    if state.get("operatingState"):
        parts.append(f"operating state {state['operatingState']}")
    if state.get("availableKw") not in (None, ""):
        parts.append(f"{state['availableKw']} kW available")
    return ", ".join(parts) or "no state reported"


@register.filter
def power_unit(units: object) -> str:
    """OpenADR's power unit codes as people write them (``KW`` -> ``kW``)."""
    return {"KW": "kW", "MW": "MW", "W": "W", "KWH": "kWh", "MWH": "MWh"}.get(
        str(units).upper(), str(units))


@register.simple_tag(takes_context=True)
def page_url(context: template.Context, param: str, number: int) -> str:
    """The current URL's query with ``param`` set to ``number`` (the filters kept)."""
    query = context["request"].GET.copy()
    query[param] = str(number)
    return "?" + query.urlencode()
