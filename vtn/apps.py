from django.apps import AppConfig


class VtnConfig(AppConfig):
    name = "vtn"
    verbose_name = "OpenADR 3 VTN"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: models may only be imported once the app registry is ready.
        from vtn import webhooks
        from vtn.signals import object_changed

        object_changed.connect(webhooks.on_object_changed,
                               dispatch_uid="vtn.webhooks.on_object_changed")
