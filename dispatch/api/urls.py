"""URLs of the operator dispatch API (mounted at /dispatch/api/v1/) and its docs."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from dispatch.api import data_views, fsp_views, views

REFERENCE = "<str:operator>/<str:reference>"

api_patterns = [
    path("dispatches", views.DispatchList.as_view()),
    path(f"dispatches/{REFERENCE}", views.DispatchDetail.as_view()),
    path(f"dispatches/{REFERENCE}/revisions", views.DispatchRevisions.as_view()),
    path(f"dispatches/{REFERENCE}/stop", views.DispatchStop.as_view()),
    path(f"dispatches/{REFERENCE}/emergency-stop", views.DispatchEmergencyStop.as_view()),
    path(f"dispatches/{REFERENCE}/audit-export", views.DispatchAuditExport.as_view()),
    path("products/<str:operator>/<str:product>", views.ProductParameters.as_view()),
    path("units/<str:operator>/<str:fsp>/<str:unit>", views.UnitCapabilities.as_view()),
    path("sites", views.SiteList.as_view()),
    path("site-keys", views.SiteKeys.as_view()),
    path("site-keys/<str:kid>/revoke", views.SiteKeyRevoke.as_view()),
    path("meter-readings", data_views.MeterReadings.as_view()),
    path("report-intakes", data_views.ReportIntakes.as_view()),
    path("contracts/<str:operator>/<str:identifier>/availability",
         data_views.ContractAvailability.as_view()),
    path("fsp/sites", fsp_views.FspSites.as_view()),
    path("fsp/dispatches", fsp_views.FspDispatches.as_view()),
    path(f"fsp/dispatches/{REFERENCE}", fsp_views.FspDispatchDetail.as_view()),
    path("fsp/availability", fsp_views.FspAvailability.as_view()),
    path("fsp/meter-readings", fsp_views.FspMeterReadings.as_view()),
]

urlpatterns = [
    *api_patterns,
    path("openapi.yaml", SpectacularAPIView.as_view(
        urlconf="dispatch.api.schema_urls", authentication_classes=[], permission_classes=[],
        custom_settings={"TITLE": "GB dispatch operator API", "VERSION": "1",
                         "DESCRIPTION": "Issue, revise, stop and list GB flexibility "
                                        "dispatches; sites and comms, meter readings, "
                                        "declared availability (business-logic clients). "
                                        "Site signing keys and the outcomes of a site's own "
                                        "reports (its VEN client). See "
                                        "docs/gb-dispatch-profile.md."}),
         name="dispatch-openapi"),
    path("docs", SpectacularSwaggerSplitView.as_view(
        url_name="dispatch-openapi", authentication_classes=[], permission_classes=[])),
]
