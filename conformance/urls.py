"""URLs of the conformance sandbox (mounted at /conformance/)."""

from __future__ import annotations

from django.urls import path

from conformance import views

urlpatterns = [
    path("", views.getting_started, name="conformance-home"),
    path("docs/<str:name>.md", views.document, name="conformance-document"),
    path("ca.pem", views.ca_certificate, name="conformance-ca"),
    path("runs/<uuid:run_id>.html", views.run_html, name="conformance-run-html"),
    path("api/v1/onboard", views.Onboard.as_view()),
    path("api/v1/runs", views.Runs.as_view()),
    path("api/v1/runs/<uuid:run_id>", views.RunDetail.as_view()),
]
