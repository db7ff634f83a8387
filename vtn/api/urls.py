"""URL patterns of one OpenADR version, built from its wire format."""

from __future__ import annotations

from django.urls import path, re_path

from vtn.api import auth_views, docs_views, notifier_views, views
from vtn.schemas import VERSION_31
from vtn.wire.base import WireFormat

OBJECT_ID = r"(?P<{name}>[a-zA-Z0-9_-]{{1,128}})"


def _id(name: str = "pk") -> str:
    return OBJECT_ID.format(name=name)


def version_patterns(wire: WireFormat) -> list:
    def view(cls):
        return cls.as_view(wire=wire)

    patterns = [
        path("programs", view(views.ProgramList)),
        re_path(rf"^programs/{_id()}$", view(views.ProgramDetail)),
        path("events", view(views.EventList)),
        re_path(rf"^events/{_id()}$", view(views.EventDetail)),
        path("reports", view(views.ReportList)),
        re_path(rf"^reports/{_id()}$", view(views.ReportDetail)),
        path("subscriptions", view(views.SubscriptionList)),
        re_path(rf"^subscriptions/{_id()}$", view(views.SubscriptionDetail)),
        path("vens", view(views.VenList)),
        re_path(rf"^vens/{_id()}$", view(views.VenDetail)),
        path("auth/token", auth_views.ClientCredentialsTokenView.as_view()),
        path("openapi.yaml", docs_views.OfficialDocument.as_view(version=wire.version)),
        path("docs", docs_views.SwaggerUI.as_view(version=wire.version)),
    ]
    if wire.version == VERSION_31:
        patterns += [
            path("resources", view(views.ResourceList)),
            re_path(rf"^resources/{_id()}$", view(views.ResourceDetail)),
            path("auth/server", auth_views.AuthServerView.as_view()),
            path("notifiers", view(notifier_views.NotifierList)),
        ]
        topics = "notifiers/mqtt/topics"
        for plural, object_type in (("programs", "PROGRAM"), ("events", "EVENT"),
                                    ("reports", "REPORT"), ("subscriptions", "SUBSCRIPTION"),
                                    ("vens", "VEN"), ("resources", "RESOURCE")):
            patterns.append(path(f"{topics}/{plural}", notifier_views.BusinessLogicTopics.as_view(
                wire=wire, object_type=object_type)))
        patterns += [
            re_path(rf"^{topics}/programs/{_id('program_id')}$",
                    notifier_views.ProgramTopics.as_view(wire=wire)),
            re_path(rf"^{topics}/programs/{_id('program_id')}/events$",
                    notifier_views.ProgramTopics.as_view(wire=wire, events=True)),
            re_path(rf"^{topics}/vens/{_id('ven_id')}$",
                    notifier_views.VenTopics.as_view(wire=wire)),
            re_path(rf"^{topics}/vens/{_id('ven_id')}/events$",
                    notifier_views.VenTopics.as_view(wire=wire, object_type="EVENT")),
            re_path(rf"^{topics}/vens/{_id('ven_id')}/programs$",
                    notifier_views.VenTopics.as_view(wire=wire, object_type="PROGRAM")),
            re_path(rf"^{topics}/vens/{_id('ven_id')}/resources$",
                    notifier_views.VenTopics.as_view(wire=wire, object_type="RESOURCE")),
        ]
    else:
        patterns += [
            re_path(rf"^vens/{_id('ven_pk')}/resources$", view(views.ResourceList)),
            re_path(rf"^vens/{_id('ven_pk')}/resources/{_id()}$", view(views.ResourceDetail)),
        ]
    return patterns
