"""An FSP's back office: which FSP registrations a staff identity reaches, what it may
do, and the reads it is given (sites, dispatches with their acknowledgements, declared
availability). Statements are read and answered through the settlement API.

A staff identity (an API client with role ``fsp``, see ``manage.py fsp staff-client``)
holds one :class:`FspStaffGrant` for one registration (one operator's FSP id). An FSP
working with several operators has one identity per operator; when the registrations
share the FSP's own ``reference``, each identity reaches all of them, so its staff see
them together. Anything of another FSP answers 404, as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet

from dispatch.models import (
    AvailabilityDeclaration,
    DispatchInstruction,
    Fsp,
    FspSite,
    FspStaffGrant,
)
from dispatch.rules import iso
from vtn.auth.scopes import ANSWER_STATEMENTS, READ_FSP, WRITE_METER_DATA
from vtn.auth.services import IssuedCredentials, create_client
from vtn.errors import BadRequest, NotFound

Role = FspStaffGrant.Role


@dataclass(frozen=True)
class Office:
    """The FSP registrations (ids of :class:`Fsp` rows) one identity reaches."""

    fsp_ids: frozenset[int]
    role: str

    @property
    def commercial(self) -> bool:
        return self.role == Role.COMMERCIAL


def reach(fsp: Fsp) -> frozenset[int]:
    """``fsp`` and every registration sharing its FSP reference."""
    if not fsp.reference:
        return frozenset({fsp.pk})
    return frozenset(Fsp.objects.filter(reference=fsp.reference).values_list("pk", flat=True))


def office_of_client(client_id: str) -> Office:
    grant = FspStaffGrant.objects.select_related("fsp").filter(
        client__application__client_id=client_id).first()
    if grant is None:
        return Office(frozenset(), Role.READ_ONLY)
    return Office(reach(grant.fsp), grant.role)


def office_of_user(user) -> Office | None:
    """The FSP registrations a console user of an FSP's staff reaches (None: not FSP staff)."""
    if not getattr(user, "is_authenticated", False):
        return None
    grant = FspStaffGrant.objects.select_related("fsp").filter(user=user).first()
    return None if grant is None else Office(reach(grant.fsp), grant.role)


def grant_user(*, user, operator: str, fsp: str, role: str) -> FspStaffGrant:
    """Make ``user`` staff of ``operator``'s FSP ``fsp`` with ``role``."""
    if role not in Role.values:
        raise BadRequest(f"role must be one of {', '.join(Role.values)}")
    found = Fsp.objects.filter(operator__code=operator.upper(), identifier=fsp).first()
    if found is None:
        raise NotFound(f"no FSP {fsp!r} registered with {operator.upper()}")
    return FspStaffGrant.objects.create(user=user, fsp=found, role=role)


# The scopes of a back-office client by role: only the commercial role may even hold the
# scope that answers statements (the settlement API checks the role as well), only the
# metering role (the FSP's meter-data provider) the one that posts meter readings.
STAFF_SCOPES = {Role.READ_ONLY: [READ_FSP], Role.COMMERCIAL: [READ_FSP, ANSWER_STATEMENTS],
                Role.METERING: [READ_FSP, WRITE_METER_DATA]}


@transaction.atomic
def create_staff_client(*, operator: str, fsp: str, name: str, role: str) -> IssuedCredentials:
    """An API client for the back office of ``operator``'s FSP ``fsp``, holding the
    scopes of ``role`` (:data:`STAFF_SCOPES`)."""
    if role not in Role.values:
        raise BadRequest(f"role must be one of {', '.join(Role.values)}")
    found = Fsp.objects.filter(operator__code=operator.upper(), identifier=fsp).first()
    if found is None:
        raise NotFound(f"no FSP {fsp!r} registered with {operator.upper()}")
    issued = create_client(name=name, role="fsp", scopes=STAFF_SCOPES[Role(role)])
    FspStaffGrant.objects.create(client=issued.client, fsp=found, role=role)
    return issued


def commercial_client_id(*, operator: str, fsp: str) -> str:
    """The clientID of the commercial back-office identity of ``operator``'s FSP ``fsp``,
    created (named ``<fsp>-<operator>-commercial``, its secret unseen) when it has none.
    Whatever answers statements on the FSP's behalf in code (the sandbox's demo history)
    answers as this identity, never as a site's gateway."""
    grant = FspStaffGrant.objects.select_related("client__application").filter(
        fsp__operator__code=operator.upper(), fsp__identifier=fsp, role=Role.COMMERCIAL,
        client__isnull=False, client__revoked=False).order_by("id").first()
    if grant is not None and grant.client is not None:
        return grant.client.client_id
    issued = create_staff_client(operator=operator, fsp=fsp, role=Role.COMMERCIAL,
                                 name=f"{fsp}-{operator.lower()}-commercial")
    return issued.client.client_id


def set_reference(*, operator: str, fsp: str, reference: str) -> Fsp:
    """Set the FSP's own reference on its registration with ``operator``."""
    found = Fsp.objects.filter(operator__code=operator.upper(), identifier=fsp).first()
    if found is None:
        raise NotFound(f"no FSP {fsp!r} registered with {operator.upper()}")
    found.reference = reference
    found.save(update_fields=["reference"])
    return found


# --- reads -----------------------------------------------------------------------------------

def sites(office: Office) -> QuerySet[FspSite]:
    from dispatch.selectors import sites as all_sites

    return all_sites().filter(fsp_id__in=office.fsp_ids)


def dispatches(office: Office) -> QuerySet[DispatchInstruction]:
    from dispatch.selectors import dispatches as all_dispatches

    return all_dispatches().filter(unit__fsp_id__in=office.fsp_ids)


def find_dispatch(office: Office, operator: str, reference: str) -> DispatchInstruction:
    found = dispatches(office).filter(operator__code=operator.upper(),
                                      reference=reference).first()
    if found is None:
        raise NotFound(f"no dispatch {reference!r} of {operator.upper()}")
    return found


def declarations(office: Office, start: datetime, end: datetime
                 ) -> QuerySet[AvailabilityDeclaration]:
    """Current availability declarations of the office's units overlapping [start, end)."""
    return AvailabilityDeclaration.objects.select_related("unit__fsp__operator").filter(
        unit__fsp_id__in=office.fsp_ids, superseded_at__isnull=True, start__lt=end,
        end__gt=start).order_by("unit__fsp__operator__code", "unit__reference", "start")


def declaration_as_dict(row: AvailabilityDeclaration) -> dict:
    return {"operator": row.unit.fsp.operator.code, "fsp": row.unit.fsp.identifier,
            "unit": row.unit.reference, "start": iso(row.start), "end": iso(row.end),
            "availableKw": format(row.available_kw.normalize(), "f"),
            "declaredAt": iso(row.declared_at)}
