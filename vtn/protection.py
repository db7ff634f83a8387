"""Which OpenADR objects another app owns, so that the API may neither delete nor change them.

An app above ``vtn`` may depend on OpenADR objects it created: the GB dispatch profile
finds a site's VEN, a unit's resource and an operator's product program through a
one-to-one link protected from deletion, and finds an FSP's standing events (and their
programs) and each dispatch's event by name or by a link that does not protect. Its
records also say what those objects contain (a product's parameters, a dispatch's signed
revision, the targets it grants a site and a unit). Deleting such an object through the
API would silently break the app; changing its content would make it disagree with the
app's records.

:func:`owners` names what owns an object: every one-to-one ``PROTECT`` relation to it,
plus whatever the policies registered with :func:`register` say (an app registers its
policy when it starts). :mod:`vtn.services` refuses to delete an object that has an
owner, or to write to it anything but what it holds already (:func:`free_fields`
excepted), unless the caller is an internal identity (the owning app itself); the
refusal names the owner and, with :func:`changed_through`, where to make the change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ObjectDoesNotExist
from django.db import models

from vtn.auth.caller import Caller
from vtn.models import Resource, Ven

# policy(instance) -> descriptions of what owns ``instance`` (empty: nothing).
OwnerPolicy = Callable[[models.Model], list[str]]


@dataclass(frozen=True, slots=True)
class _App:
    policy: OwnerPolicy | None
    changed_through: str


_apps: dict[str, _App] = {}

# What a VEN client may still write to its own ven and resources when another app owns
# them: their attributes are the VEN's description of itself.
SELF_DESCRIPTION = frozenset({"attributes"})


def register(app_label: str, policy: OwnerPolicy | None = None, *,
             changed_through: str) -> None:
    """Consult ``policy`` (if any) from now on, and tell whoever may not change an object
    the app ``app_label`` owns (by the policy or by a ``PROTECT`` link) where to change
    it: ``changed_through`` is a sentence. A second registration replaces the first."""
    _apps[app_label] = _App(policy, changed_through)


def describe(owner: models.Model) -> str:
    meta = owner._meta
    return f"{meta.app_config.verbose_name} {meta.verbose_name} {owner}"


def _owning(instance: models.Model) -> list[tuple[str, str]]:
    """(description, app label) of everything that owns ``instance``."""
    found = []
    for relation in instance._meta.related_objects:
        accessor = relation.get_accessor_name()
        if not relation.one_to_one or relation.on_delete is not models.PROTECT or not accessor:
            continue
        try:
            owner = getattr(instance, accessor)
        except ObjectDoesNotExist:
            continue
        found.append((describe(owner), owner._meta.app_label))
    if instance.pk is not None:
        for app_label, app in list(_apps.items()):
            if app.policy is not None:
                found.extend((text, app_label) for text in app.policy(instance))
    return found


def owners(instance: models.Model) -> list[str]:
    """What owns ``instance`` outside OpenADR, described for a problem detail; empty for
    plain objects."""
    return [text for text, _ in _owning(instance)]


def changed_through(instance: models.Model) -> str:
    """Where the apps owning ``instance`` let it be changed, for a problem detail."""
    labels = dict.fromkeys(label for _, label in _owning(instance))
    said = [_apps[label].changed_through for label in labels if label in _apps]
    return " ".join(said) or "Change it through the application that owns it."


def free_fields(instance: models.Model, caller: Caller) -> frozenset[str]:
    """The fields of an owned ``instance`` that ``caller`` may still change through the
    API: a VEN client's own ven and resources keep their self-description free."""
    if (isinstance(instance, Ven | Resource) and caller.is_ven
            and instance.client_id == caller.client_id):
        return SELF_DESCRIPTION
    return frozenset()
