"""Console URLs, mounted at /console/ (no trailing slashes: APPEND_SLASH is off)."""

from django.urls import path

from console.views import (
    audit,
    auth,
    dashboard,
    dispatches,
    fsp,
    registry,
    settlement,
    subscriptions,
)

app_name = "console"

DISPATCH = "dispatches/<str:operator>/<str:reference>"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("fragments/dashboard", dashboard.dashboard_fragment, name="dashboard-fragment"),
    path("login", auth.login, name="login"),
    path("logout", auth.logout, name="logout"),
    path("registry", registry.registry, name="registry"),
    path("registry/onboard", registry.onboard, name="onboard"),
    path("registry/contracts/new", registry.new_contract, name="new-contract"),
    path("registry/products", registry.product_parameters, name="products"),
    path("registry/units/<str:operator>/<str:fsp>/<str:unit>", registry.unit_capabilities,
         name="unit-capabilities"),
    path("bundles/<uuid:bundle_id>", registry.bundle, name="bundle"),
    path("dispatches", dispatches.dispatch_list, name="dispatches"),
    path("dispatches/new", dispatches.issue, name="issue"),
    path(DISPATCH, dispatches.dispatch_detail, name="dispatch"),
    path(f"{DISPATCH}/timeline", dispatches.dispatch_timeline, name="timeline"),
    path(f"{DISPATCH}/revise", dispatches.revise, name="revise"),
    path(f"{DISPATCH}/stop", dispatches.stop, name="stop"),
    path(f"{DISPATCH}/emergency-stop", dispatches.emergency_stop, name="emergency-stop"),
    path(f"{DISPATCH}/evidence", audit.evidence, name="evidence"),
    path("statements", settlement.statement_list, name="statements"),
    path("statements/compute", settlement.compute, name="compute"),
    path("statements/<int:statement_id>", settlement.statement_detail, name="statement"),
    path("statements/<int:statement_id>/issue", settlement.issue, name="statement-issue"),
    path("statements/<int:statement_id>/resolve", settlement.resolve,
         name="statement-resolve"),
    path("statements/<int:statement_id>/finalise", settlement.finalise,
         name="statement-finalise"),
    path("statements/<int:statement_id>/export.<str:fmt>", settlement.export,
         name="statement-export"),
    path("audit", audit.audit_log, name="audit"),
    path("fsp", fsp.home, name="fsp"),
    path("fsp/statements/<int:statement_id>/<str:verb>", fsp.answer, name="fsp-answer"),
    path("subscriptions", subscriptions.subscription_list, name="subscriptions"),
    path("subscriptions/<str:subscription_id>/reset", subscriptions.reset_subscription,
         name="subscription-reset"),
]
