"""Give the OpenADR objects the GB dispatch profile already made their network operator
as owner (vtn.ownership): the programs it published (they carry the GB_NETWORK_OPERATOR
attribute), the VENs of registered sites, and subscriptions by the sites' VEN clients and
by business-logic clients with operator grants. Other objects stay without an owner."""

from django.db import migrations

OPERATOR_ATTRIBUTE = "GB_NETWORK_OPERATOR"


def assign_owners(apps, schema_editor):
    Program = apps.get_model("vtn", "Program")
    Subscription = apps.get_model("vtn", "Subscription")
    ObjectOwner = apps.get_model("vtn", "ObjectOwner")
    FspSite = apps.get_model("dispatch", "FspSite")
    OperatorGrant = apps.get_model("dispatch", "OperatorGrant")
    rows = set()
    for program_id, attributes in Program.objects.values_list("id", "attributes"):
        for attribute in attributes or []:
            if isinstance(attribute, dict) and attribute.get("type") == OPERATOR_ATTRIBUTE:
                rows.update(("PROGRAM", program_id, str(code)) for code in
                            attribute.get("values") or [])
    ven_owner = dict(FspSite.objects.values_list("ven_id", "fsp__operator__code"))
    client_owner = dict(FspSite.objects.values_list("ven__client_id", "fsp__operator__code"))
    rows.update(("VEN", ven_id, code) for ven_id, code in ven_owner.items())
    grants: dict[str, set[str]] = {}
    for client_id, code in OperatorGrant.objects.filter(client__isnull=False).values_list(
            "client__application__client_id", "operator"):
        grants.setdefault(client_id, set()).add(code)
    for subscription_id, client_id in Subscription.objects.values_list("id", "client_id"):
        codes = grants.get(client_id) or ({client_owner[client_id]} if client_id in
                                          client_owner else set())
        rows.update(("SUBSCRIPTION", subscription_id, code) for code in codes)
    ObjectOwner.objects.bulk_create(
        [ObjectOwner(kind=kind, object_id=object_id, owner=owner)
         for kind, object_id, owner in sorted(rows)], ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ("dispatch", "0014_signed_reports"),
        ("vtn", "0009_object_owner"),
    ]

    operations = [migrations.RunPython(assign_owners, migrations.RunPython.noop)]
