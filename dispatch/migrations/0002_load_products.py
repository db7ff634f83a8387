"""Load the five ENA products from dispatch.products (idempotent: existing rows stay)."""

from django.db import migrations


def load(apps, schema_editor):
    from dispatch.products import PRODUCT_TEMPLATES

    Product = apps.get_model("dispatch", "Product")
    for item in PRODUCT_TEMPLATES:
        Product.objects.get_or_create(code=item.code, defaults={
            "name": item.name, "summary": item.summary, "notice_period": item.notice_period,
            "ramp_time": item.ramp_time, "quantity": item.quantity,
            "setpoint_types": list(item.setpoint_types), "directions": list(item.directions),
            "heartbeat_interval": item.heartbeat_interval,
            "availability_paid": item.availability_paid,
            "default_urgency": item.default_urgency})


class Migration(migrations.Migration):
    dependencies = [("dispatch", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
