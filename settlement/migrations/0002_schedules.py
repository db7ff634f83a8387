"""Schedule the settlement tasks with django-celery-beat (operators may edit them in the
admin): due dispatches every 15 minutes, drafts recomputed nightly, statements issued
monthly."""

from django.db import migrations

EVERY_15_MINUTES = ("settlement: settle due dispatches",
                    "settlement.tasks.settle_due_dispatches")
CRONTABS = (
    ("settlement: recompute drafts", "settlement.tasks.recompute_drafts",
     {"minute": "30", "hour": "2", "day_of_month": "*"}),
    ("settlement: issue monthly statements", "settlement.tasks.issue_monthly_statements",
     {"minute": "0", "hour": "6", "day_of_month": "5"}),
)


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    name, task = EVERY_15_MINUTES
    PeriodicTask.objects.update_or_create(
        name=name, defaults={"task": task, "interval": every, "enabled": True})
    for name, task, when in CRONTABS:
        crontab, _ = CrontabSchedule.objects.get_or_create(
            **when, day_of_week="*", month_of_year="*", timezone="Europe/London")
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "crontab": crontab, "enabled": True})


def unschedule(apps, schema_editor):
    names = [EVERY_15_MINUTES[0], *(name for name, _, _ in CRONTABS)]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("settlement", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
