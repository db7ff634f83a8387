from django.db import migrations

# Purge heartbeats, security log lines and meter readings past their retention
# (dispatch.tasks.purge_retained) daily at 03:30 UTC, with django-celery-beat.
TASK = "dispatch.tasks.purge_retained"
NAME = "dispatch: purge data past its retention"


def schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*",
        timezone="UTC")
    PeriodicTask.objects.update_or_create(
        name=NAME, defaults={"task": TASK, "crontab": daily, "interval": None,
                             "enabled": True})


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("dispatch", "0007_operator_product_parameters"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
