"""URLs of the settlement API (mounted at /settlement/api/v1/) and its docs."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from settlement.api import views

STATEMENT = "statements/<str:statement_id>"

api_patterns = [
    path("statements", views.StatementList.as_view()),
    path(STATEMENT, views.StatementDetail.as_view()),
    path(f"{STATEMENT}/export", views.StatementExport.as_view()),
    path(f"{STATEMENT}/issue", views.IssueStatement.as_view()),
    path(f"{STATEMENT}/accept", views.AcceptStatement.as_view()),
    path(f"{STATEMENT}/dispute", views.DisputeStatement.as_view()),
    path(f"{STATEMENT}/resolve", views.ResolveStatement.as_view()),
    path(f"{STATEMENT}/finalise", views.FinaliseStatement.as_view()),
]

urlpatterns = [
    *api_patterns,
    path("openapi.yaml", SpectacularAPIView.as_view(
        urlconf="settlement.api.schema_urls", authentication_classes=[],
        permission_classes=[],
        custom_settings={"TITLE": "GB settlement API", "VERSION": "1",
                         "DESCRIPTION": "Monthly settlement statements: compute, issue, accept, "
                                        "dispute, finalise, export. See docs/settlement.md."}),
         name="settlement-openapi"),
    path("docs", SpectacularSwaggerSplitView.as_view(
        url_name="settlement-openapi", authentication_classes=[], permission_classes=[])),
]
