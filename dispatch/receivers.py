"""The dispatch app's reactions to OpenADR writes (``vtn.signals.object_changed``, sent
after commit): a report on a dispatch's event may carry acknowledgements; a report on a
heartbeat event is a heartbeat; one on an availability or metering event carries
declarations or readings."""

from __future__ import annotations

import logging

from dispatch import comms, intake, services
from vtn.models import Report

logger = logging.getLogger(__name__)


def on_object_changed(sender, *, object_type: str, operation: str, instance, **kwargs) -> None:
    if object_type != "REPORT" or operation not in ("CREATE", "UPDATE"):
        return
    if not isinstance(instance, Report):
        return
    try:
        services.record_acknowledgements(instance)
    except Exception:  # the report is stored already; never fail the VEN's request
        logger.exception("could not record the acknowledgements of report %s", instance.pk)
    try:
        comms.record_heartbeat(instance)
    except Exception:
        logger.exception("could not record the heartbeat of report %s", instance.pk)
    try:
        intake.record_report(instance)
    except Exception:
        logger.exception("could not record the declarations or readings of report %s",
                         instance.pk)
