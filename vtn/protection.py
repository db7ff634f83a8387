"""Which OpenADR objects another app owns, so that the API may neither delete nor rename them.

An app above ``vtn`` may depend on OpenADR objects it created: the GB dispatch profile
finds a site's VEN, a unit's resource and an operator's product program through a
one-to-one link protected from deletion, and finds an FSP's standing events (and their
programs) and each dispatch's event by name or by a link that does not protect. Either
way, deleting or renaming such an object through the API would silently break the app.

:func:`owners` names what owns an object: every one-to-one ``PROTECT`` relation to it,
plus whatever the policies registered with :func:`register` say (an app registers its
policy when it starts). :mod:`vtn.services` refuses to delete or rename an object that
has an owner, unless the caller is an internal identity (the owning app itself).
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ObjectDoesNotExist
from django.db import models

# policy(instance) -> descriptions of what owns ``instance`` (empty: nothing).
OwnerPolicy = Callable[[models.Model], list[str]]

_policies: dict[str, OwnerPolicy] = {}


def register(name: str, policy: OwnerPolicy) -> None:
    """Consult ``policy`` from now on (a second registration under ``name`` replaces it)."""
    _policies[name] = policy


def describe(owner: models.Model) -> str:
    meta = owner._meta
    return f"{meta.app_config.verbose_name} {meta.verbose_name} {owner}"


def owners(instance: models.Model) -> list[str]:
    """What owns ``instance`` outside OpenADR, described for a problem detail; empty for
    plain objects."""
    found = []
    for relation in instance._meta.related_objects:
        accessor = relation.get_accessor_name()
        if not relation.one_to_one or relation.on_delete is not models.PROTECT or not accessor:
            continue
        try:
            owner = getattr(instance, accessor)
        except ObjectDoesNotExist:
            continue
        found.append(describe(owner))
    if instance.pk is not None:
        for policy in list(_policies.values()):
            found.extend(policy(instance))
    return found
