from django.apps import AppConfig


class ConformanceConfig(AppConfig):
    name = "conformance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from conformance.push import on_topics_discovered
        from vtn.signals import topics_discovered

        topics_discovered.connect(on_topics_discovered, dispatch_uid="conformance-topics")
