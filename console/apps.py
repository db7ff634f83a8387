from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    default = True
    name = "console"
    verbose_name = "Operator console"
    default_auto_field = "django.db.models.BigAutoField"


class VtnAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with ``console.admin_site.VtnAdminSite`` as ``admin.site``:
    the console's second factor and login throttle."""

    default = False
    default_site = "console.admin_site.VtnAdminSite"
