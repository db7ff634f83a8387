from django.apps import AppConfig


class SettlementConfig(AppConfig):
    name = "settlement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: models may only be imported once the app registry is ready.
        from dispatch import retention
        from settlement.retention import readings_kept_for_statements

        retention.keep_readings(readings_kept_for_statements)
