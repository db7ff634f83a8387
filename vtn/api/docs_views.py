"""API documentation for integrators: the official documents, served with our base URL."""

from __future__ import annotations

from functools import cache

import yaml
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import View

from vtn.schemas import document


@cache
def _without_servers(version: str) -> dict:
    body = dict(document(version))
    body.pop("servers", None)
    return body


class OfficialDocument(View):
    """The version's official OpenAPI document, with `servers` pointing at this VTN."""

    version = ""

    def get(self, request: HttpRequest) -> HttpResponse:
        base = request.build_absolute_uri("./").rstrip("/")
        body = dict(_without_servers(self.version))
        body["servers"] = [{"url": base, "description": "This VTN"}]
        return HttpResponse(yaml.safe_dump(body, sort_keys=False),
                            content_type="application/yaml; charset=utf-8")


class SwaggerUI(View):
    """Interactive documentation (Swagger UI, served locally) for one version."""

    version = ""

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "vtn/swagger_ui.html",
                      {"version": self.version, "schema_url": "openapi.yaml"})
