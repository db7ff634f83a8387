from django.apps import AppConfig


class VtnConfig(AppConfig):
    name = "vtn"
    verbose_name = "OpenADR 3 VTN"
    default_auto_field = "django.db.models.BigAutoField"
