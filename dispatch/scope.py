"""Which network operators an operator-side identity may see and act for.

An API client with the business-logic role and a console user each hold grants
(:class:`dispatch.models.OperatorGrant`), usually one, several for a shared service
company. Every operator-side read and write takes the caller's :class:`Scope`: lists show
only rows of granted operators, and naming an object of any other operator answers exactly
as for an object that does not exist (404), while the attempt is written to the security
log. Management commands run with no scope (``None``): whoever runs them already holds the
server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from dispatch.models import OperatorGrant
from dispatch.registry import NETWORK_OPERATORS, check_operator_code
from vtn import generations, ownership
from vtn.auth import security_log


@dataclass(frozen=True)
class Scope:
    """The operators one caller may reach, and who the caller is (for the security log)."""

    operators: frozenset[str]
    who: str  # an API client id, or "console:<username>"
    remote_addr: str = ""

    def allows(self, operator_code: str) -> bool:
        return operator_code.upper() in self.operators

    def refuse(self, what: str, operator_code: str) -> None:
        """Record a reach for ``what`` of ``operator_code`` outside the scope; the caller
        then answers 404, as for something that does not exist."""
        security_log.record(
            security_log.Kind.OUT_OF_SCOPE, client_id=self.who, remote_addr=self.remote_addr,
            detail=f"{what} of {operator_code} is outside the caller's operators "
                   f"({', '.join(sorted(self.operators)) or 'none'})")


def operators_of_client(client_id: str) -> frozenset[str]:
    return frozenset(OperatorGrant.objects.filter(
        client__application__client_id=client_id).values_list("operator", flat=True))


def operators_of_user(user) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    return frozenset(OperatorGrant.objects.filter(user=user).values_list("operator",
                                                                         flat=True))


def for_client(client_id: str, remote_addr: str = "") -> Scope:
    return Scope(operators_of_client(client_id), client_id, remote_addr)


def for_user(user, remote_addr: str = "") -> Scope:
    return Scope(operators_of_user(user), f"console:{user.get_username()}", remote_addr)


def owner_policy() -> ownership.OwnerPolicy:
    """How the OpenADR API narrows business logic: an object's owners are network
    operator codes, and a client reaches the operators it is granted."""
    return ownership.OwnerPolicy(owners_of_client=operators_of_client,
                                 every=frozenset(NETWORK_OPERATORS))


def _codes(operators: Iterable[str]) -> list[str]:
    return sorted({check_operator_code(code) for code in operators})


@transaction.atomic
def set_operators(*, client=None, user=None, operators: Iterable[str],
                  changed_by: str) -> list[str]:
    """Replace the grants of one API client or one console user with ``operators``
    (network operator codes); an empty list leaves the identity seeing nothing. The change
    is written to the security log."""
    if (client is None) == (user is None):
        raise ValueError("name exactly one of client and user")
    codes = _codes(operators)
    rows = OperatorGrant.objects.filter(client=client) if client is not None else \
        OperatorGrant.objects.filter(user=user)
    rows.exclude(operator__in=codes).delete()
    present = set(rows.values_list("operator", flat=True))
    OperatorGrant.objects.bulk_create([OperatorGrant(client=client, user=user, operator=code)
                                       for code in codes if code not in present])
    if client is not None:  # cached reaches of the OpenADR API (vtn.ownership) are dropped
        generations.bump(generations.AUTH)
    who = client.client_id if client is not None else f"console:{user.get_username()}"
    security_log.record(security_log.Kind.SCOPE_CHANGED, client_id=who,
                        detail=f"operators set to {', '.join(codes) or 'none'} by "
                               f"{changed_by}")
    return codes
