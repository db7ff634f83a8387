from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("console", "0002_roles")]

    operations = [
        migrations.CreateModel(
            name="LoginThrottle",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                           serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=400, unique=True)),
                ("failures", models.PositiveIntegerField(default=0)),
                ("last_failure", models.DateTimeField()),
                ("locked_until", models.DateTimeField(blank=True, null=True)),
            ],
            options={"ordering": ["key"]},
        ),
    ]
