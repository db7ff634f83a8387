"""The OpenADR objects the dispatch profile owns without a protecting link, for
:mod:`vtn.protection`: the API may neither delete nor change them.

* each operator's standing programs (``GB-<OP>-HEARTBEAT``, ``-AVAILABILITY``,
  ``-METERING``) and each FSP's standing event in them: the profile finds them by name,
  so a renamed or deleted one would stop heartbeats, declarations and readings being
  recognised (and deleting one would take the FSPs' reports with it);
* each dispatch's event: the profile publishes its revisions there.

Site VENs, unit resources and product programs are protected by their one-to-one
``PROTECT`` links already (``FspSite.ven``, ``DispatchUnit.resource``,
``OperatorProgram.program``). Whatever owns them, they are changed only through the
profile, which keeps them in step with the registry and with the signed dispatches.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.db import models

from dispatch import fsp_events
from dispatch.models import NetworkOperator
from vtn.models import Event, Program


def _standing_kind(program: Program) -> tuple[str, str] | None:
    """(operator code, kind) when ``program`` is an operator's standing program."""
    name = program.program_name or ""
    if not name.startswith("GB-") or "-" not in name[3:]:
        return None
    operator, kind = name[3:].rsplit("-", 1)
    if kind not in fsp_events.KINDS or not NetworkOperator.objects.filter(
            code=operator).exists():
        return None
    return operator, kind


CHANGED_THROUGH = (
    "Change it through the GB dispatch profile, which keeps it in step with the registry "
    "and the signed dispatches: the network operator's dispatch API (/dispatch/api/v1), "
    "the manage.py dispatch and fsp commands, or the operator console.")


def owners(instance: models.Model) -> list[str]:
    """What in the dispatch profile owns ``instance`` (empty: nothing)."""
    if isinstance(instance, Program):
        standing = _standing_kind(instance)
        if standing:
            return [f"GB dispatch standing {standing[1]} program of operator {standing[0]}"]
    elif isinstance(instance, Event):
        found = []
        try:
            found.append(f"GB dispatch instruction {instance.gb_dispatch}")
        except ObjectDoesNotExist:
            pass
        if fsp_events.kind_of(instance) and _standing_kind(instance.program):
            found.append(f"GB dispatch standing event {instance.event_name}")
        return found
    return []
