"""The URL configuration the sandbox API's OpenAPI document is generated from."""

from django.urls import path

from conformance import views

urlpatterns = [
    path("conformance/api/v1/onboard", views.Onboard.as_view()),
    path("conformance/api/v1/runs", views.Runs.as_view()),
    path("conformance/api/v1/runs/<uuid:run_id>", views.RunDetail.as_view()),
]
