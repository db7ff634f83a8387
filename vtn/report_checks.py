"""Checks other apps run on a report before it is written.

``vtn`` knows nothing of the apps above it, yet a profile may have to refuse a report
outright (the GB dispatch profile refuses a declaration whose signature does not verify):
such an app registers a check with :func:`register` when it starts, and
:func:`vtn.services.save_report` runs every check inside its transaction, before the
report is saved. A check raises a :class:`vtn.errors.Problem` to refuse the report, which
then changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from vtn.auth.caller import Caller
from vtn.models import Event

# check(caller=, event=, data=) with data the report in internal form (resources,
# payload_descriptors, ...), after the event has been found visible to the caller.
ReportCheck = Callable[..., None]

_checks: dict[str, ReportCheck] = {}


def register(name: str, check: ReportCheck) -> None:
    """Run ``check`` on every report written from now on (a second registration under the
    same ``name`` replaces the first)."""
    _checks[name] = check


def run(*, caller: Caller, event: Event, data: dict) -> None:
    for check in list(_checks.values()):
        check(caller=caller, event=event, data=data)
