from django.apps import AppConfig


class DispatchConfig(AppConfig):
    name = "dispatch"
    verbose_name = "GB dispatch"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: models may only be imported once the app registry is ready.
        from dispatch import owned_objects
        from dispatch.receivers import on_object_changed
        from dispatch.report_signatures import check_report
        from dispatch.scope import owner_policy
        from vtn import ownership, protection, report_checks
        from vtn.signals import object_changed

        object_changed.connect(on_object_changed, dispatch_uid="dispatch-acknowledgements")
        # Declarations and readings with a signature that does not verify are refused
        # before they are written.
        report_checks.register("dispatch-report-signatures", check_report)
        # OpenADR objects are owned by network operators; a client reaches its grants'.
        ownership.register(owner_policy())
        # What the profile owns (standing programs and events and dispatch events by this
        # policy; site VENs, unit resources and product programs by their links) may be
        # neither deleted nor changed through the OpenADR API.
        protection.register(self.label, owned_objects.owners,
                            changed_through=owned_objects.CHANGED_THROUGH)
