"""The five ENA flexibility products as program templates (pure data, no ORM).

Every difference between products is a parameter here; no code branches on a product.
The data migration and :func:`dispatch.programs.load_products` load these rows as the
products' defaults; each network operator may set its own timing values per product
(:func:`dispatch.programs.set_product_parameters`), and the rules read those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

ABSOLUTE = "absolute"
DELTA = "delta"
FIXED = "fixed"
VARIABLE = "variable"


@dataclass(frozen=True)
class ProductTemplate:
    code: str  # upper case, used in program names and the signed document
    name: str
    summary: str
    notice_period: timedelta  # minimum time from instruction to service start
    ramp_time: timedelta  # expected time to reach a setpoint from the previous level
    quantity: str  # FIXED: one volume for the whole window; VARIABLE: may change per setpoint
    setpoint_types: tuple[str, ...]  # allowed, first is the default
    heartbeat_interval: timedelta | None  # None: no heartbeat expected
    availability_paid: bool
    directions: tuple[str, ...] = ("import", "export")  # unit directions it applies to
    default_urgency: str = "warning"
    # turn_to_zero: a dispatch issued without setpoints holds absolute 0 from its start
    extra: dict = field(default_factory=dict)


PRODUCT_TEMPLATES: tuple[ProductTemplate, ...] = (
    ProductTemplate(
        code="SUSTAIN", name="Sustain",
        summary="Scheduled well in advance to keep peak loading within limits.",
        notice_period=timedelta(days=7), ramp_time=timedelta(minutes=30), quantity=FIXED,
        setpoint_types=(DELTA,), heartbeat_interval=None, availability_paid=False,
        default_urgency="advisory"),
    ProductTemplate(
        code="SECURE", name="Secure",
        summary="Pre-fault constraint management, confirmed ahead of the service window.",
        notice_period=timedelta(days=1), ramp_time=timedelta(minutes=15), quantity=VARIABLE,
        setpoint_types=(DELTA, ABSOLUTE), heartbeat_interval=timedelta(minutes=15),
        availability_paid=True),
    ProductTemplate(
        code="DYNAMIC", name="Dynamic",
        summary="Post-fault response at short notice; availability is paid.",
        notice_period=timedelta(minutes=15), ramp_time=timedelta(minutes=15),
        quantity=VARIABLE, setpoint_types=(DELTA, ABSOLUTE),
        heartbeat_interval=timedelta(minutes=5), availability_paid=True,
        default_urgency="emergency"),
    ProductTemplate(
        code="RESTORE", name="Restore",
        summary="Helps reconnect customers after a loss of supply; may be instructed "
                "immediately.",
        notice_period=timedelta(0), ramp_time=timedelta(minutes=30), quantity=VARIABLE,
        setpoint_types=(ABSOLUTE, DELTA), heartbeat_interval=timedelta(minutes=5),
        availability_paid=False, default_urgency="emergency"),
    ProductTemplate(
        code="MW_DISPATCH", name="MW Dispatch",
        summary="Export units reduce export (to zero by default) on instruction; heartbeats "
                "are expected.",
        notice_period=timedelta(0), ramp_time=timedelta(minutes=2), quantity=FIXED,
        setpoint_types=(ABSOLUTE,), heartbeat_interval=timedelta(minutes=1),
        availability_paid=False, directions=("export",), default_urgency="warning",
        extra={"turn_to_zero": True}),
)


def template(code: str) -> ProductTemplate:
    for item in PRODUCT_TEMPLATES:
        if item.code == code:
            return item
    raise KeyError(code)


def normalise_code(text: str) -> str:
    """``mw-dispatch``, ``MW Dispatch`` and ``MW_DISPATCH`` all name MW_DISPATCH."""
    return (text or "").strip().upper().replace("-", "_").replace(" ", "_")


def turns_to_zero(code: str) -> bool:
    """Whether a dispatch of product ``code`` without setpoints means "export nothing"."""
    try:
        return bool(template(code).extra.get("turn_to_zero"))
    except KeyError:
        return False
