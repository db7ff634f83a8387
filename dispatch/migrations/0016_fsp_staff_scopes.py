"""Read-only FSP back-office clients stop holding the scope that answers statements, and
OpenADR clients (business logic, site gateways) any back-office scope: a client holds
only what its role may use (vtn.auth.scopes.ROLE_SCOPES, dispatch.fsp_office.STAFF_SCOPES).
Cached tokens are dropped (the auth generation moves), so the change holds at once."""

import secrets

from django.db import migrations

BACK_OFFICE = {"read_fsp", "answer_statements"}


def narrow_scopes(apps, schema_editor):
    Client = apps.get_model("vtn", "Client")
    FspStaffGrant = apps.get_model("dispatch", "FspStaffGrant")
    Generation = apps.get_model("vtn", "Generation")
    read_only = set(FspStaffGrant.objects.filter(client__isnull=False, role="read_only")
                    .values_list("client_id", flat=True))
    for client in Client.objects.all():
        scopes = client.scopes.split()
        if client.role == "fsp":
            keep = [s for s in scopes if s in BACK_OFFICE and not (
                s == "answer_statements" and client.pk in read_only)]
        else:
            keep = [s for s in scopes if s not in BACK_OFFICE]
        if keep != scopes:
            client.scopes = " ".join(keep)
            client.save(update_fields=["scopes"])
    Generation.objects.update_or_create(name="auth", defaults={"value": secrets.randbits(62)})


class Migration(migrations.Migration):

    dependencies = [
        ("dispatch", "0015_openadr_owners"),
        ("vtn", "0009_object_owner"),
    ]

    operations = [migrations.RunPython(narrow_scopes, migrations.RunPython.noop)]
