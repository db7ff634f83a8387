"""The dispatch app's reactions to OpenADR writes (``vtn.signals.object_changed``, sent
after commit): every written report is classified and recorded by
:mod:`dispatch.report_routing`."""

from __future__ import annotations

import logging

from dispatch import report_routing
from vtn.models import Report

logger = logging.getLogger(__name__)


def on_object_changed(sender, *, object_type: str, operation: str, instance, **kwargs) -> None:
    if object_type != "REPORT" or operation not in ("CREATE", "UPDATE"):
        return
    if not isinstance(instance, Report):
        return
    try:
        report_routing.route(instance)
    except Exception:  # the report is stored already; never fail the VEN's request
        logger.exception("could not record report %s", instance.pk)
