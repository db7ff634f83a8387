"""OpenADR resource views. Each reads the same way: check scope (permission class),
parse with the version's serializer, call a selector or service, render."""

from __future__ import annotations

import dataclasses
import hashlib
import time

from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils.http import quote_etag
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from vtn import ownership, selectors, services
from vtn.api import idempotency
from vtn.auth.authentication import caller_of
from vtn.auth.caller import Caller
from vtn.auth.scopes import (
    READ_OWNED,
    READ_TARGETED,
    WRITE_EVENTS,
    WRITE_PROGRAMS,
    WRITE_REPORTS,
    WRITE_SUBSCRIPTIONS,
    WRITE_VENS,
)
from vtn.errors import NotFound
from vtn.generations import ProcessCache
from vtn.memory import collection_paused
from vtn.models import Resource, Ven
from vtn.wire.base import WireFormat

NOT_FOUND = "No {kind} with this ID exists, or it is not visible to this client."


def _one(request: Request, queryset: QuerySet, pk: str, kind: str):
    """The object ``pk`` among what the caller may see, or 404. Another operator's
    object answers the same 404, and the reach for it is logged (vtn.ownership)."""
    instance = queryset.filter(pk=pk).first()
    if instance is None:
        raise NotFound(NOT_FOUND.format(kind=kind),
                       after_rollback=ownership.refusal(caller_of(request), kind, pk))
    return instance


class OpenADRView(APIView):
    # Set per version in the URL configuration (as_view(wire=...)); as_view only accepts
    # arguments that name an existing class attribute.
    wire: WireFormat = None  # type: ignore[assignment]

    def page(self, request: Request, queryset: QuerySet) -> list:
        return selectors.page(queryset, self.wire.page(request.query_params))

    def polled_list(self, request: Request, kind: str, build) -> HttpResponse:
        """Answer a polled list (programs, events) from this process's cache when fresh.

        The key holds everything the answer depends on: version, query, the targeting
        generation and the caller's granted labels (or, for BL, the owners it reaches), so
        VENs granted the same labels share one entry. ``build`` returns (body, valid_until or None).
        """
        key = poll_key(self.wire.version, kind, caller_of(request),
                       request.META.get("QUERY_STRING", ""))
        cached = fresh_poll_answer(key)
        if cached is None:
            body, valid_until = build()
            content = JSONRenderer().render(body)
            # The ETag ConditionalGetMiddleware would compute, computed once per answer.
            cached = (content, valid_until, quote_etag(hashlib.md5(content,
                                                                   usedforsecurity=False)
                                                       .hexdigest()))
            _polled.put(key, cached)
        response = HttpResponse(cached[0], content_type="application/json")
        response["ETag"] = cached[2]
        # For the WSGI layer: this answer may be replayed to the same audience
        # (webserver/poll_replay.py) while the key stays fresh.
        request.META[POLL_KEY_ENVIRON] = key
        return response

    def created(self, request: Request, object_type: str, create, render,
                visible: QuerySet) -> Response:
        """Answer a creating POST with 201, at most once per Idempotency-Key.

        ``create()`` parses and saves the object; ``render(object)`` is its body;
        ``visible`` is what the caller may see, where a retry finds the object again.
        """
        return idempotency.create_once(request, object_type=object_type, create=create,
                                       render=render,
                                       find=lambda pk: visible.filter(pk=pk).first())


# Rendered answers of polled lists, for this process (see OpenADRView.polled_list).
_polled: ProcessCache[tuple, tuple[bytes, float | None, str]] = ProcessCache()
POLL_KEY_ENVIRON = "vtn.poll_key"


def poll_key(version: str, kind: str, caller: Caller, query_string: str) -> tuple:
    """Everything a polled list's answer depends on: version, kind, the targeting
    generation, the caller's granted labels (or BL) and the query, so VENs granted the
    same labels share one answer."""
    # Business logic shares entries per owner reach (None: every owner).
    audience = ("BL", ownership.reach(caller)) if caller.is_bl else \
        selectors.granted_labels(caller)
    return (version, kind, caller.targeting_generation, audience, query_string)


def fresh_poll_answer(key: tuple) -> tuple[bytes, float | None, str] | None:
    """(body, valid until or None, ETag) of a cached polled answer still valid now."""
    cached = _polled.get(key)
    if cached is None or (cached[1] is not None and cached[1] <= time.time()):
        return None
    return cached


class ProgramList(OpenADRView):
    scopes = {"GET": READ_TARGETED, "POST": {WRITE_PROGRAMS}}

    def get(self, request: Request) -> HttpResponse:
        def build() -> tuple[list, None]:
            filters = self.wire.filters(request.query_params)
            visible = selectors.visible_labels(caller_of(request), filters)
            programs = self.page(request, selectors.programs(caller_of(request), filters))
            return [self.wire.program_out(p, visible) for p in programs], None

        return self.polled_list(request, "programs", build)

    def post(self, request: Request) -> Response:
        return self.created(
            request, "PROGRAM",
            lambda: services.save_program(caller=caller_of(request),
                                          data=self.wire.program_in(request.data)),
            lambda program: self.wire.program_out(program, None),
            selectors.programs(caller_of(request)))


class ProgramDetail(OpenADRView):
    scopes = {"GET": READ_TARGETED, "PUT": {WRITE_PROGRAMS}, "DELETE": {WRITE_PROGRAMS}}

    def get(self, request: Request, pk: str) -> Response:
        program = _one(request, selectors.programs(caller_of(request)), pk, "program")
        visible = selectors.visible_labels(caller_of(request), selectors.Filters())
        return Response(self.wire.program_out(program, visible))

    def put(self, request: Request, pk: str) -> Response:
        program = _one(request, selectors.programs(caller_of(request)), pk, "program")
        data = self.wire.program_in(request.data)
        program = services.save_program(caller=caller_of(request), data=data, program=program)
        return Response(self.wire.program_out(program, None))

    def delete(self, request: Request, pk: str) -> Response:
        program = _one(request, selectors.programs(caller_of(request)), pk, "program")
        body = self.wire.program_out(program, None)
        services.delete_program(caller=caller_of(request), program=program)
        return Response(body)


class EventList(OpenADRView):
    scopes = {"GET": READ_TARGETED, "POST": {WRITE_EVENTS}}

    def get(self, request: Request) -> HttpResponse:
        def build() -> tuple[list, float | None]:
            filters = self.wire.filters(request.query_params)
            visible = selectors.visible_labels(caller_of(request), filters)
            queryset = selectors.events(caller_of(request), filters)
            events = self.page(request, queryset)
            # An `active` answer changes when a matching event ends: keep it until then.
            until = selectors.next_end(queryset) if filters.active_at else None
            return [self.wire.event_out(e, visible) for e in events], until

        return self.polled_list(request, "events", build)

    def post(self, request: Request) -> Response:
        return self.created(
            request, "EVENT",
            lambda: services.save_event(caller=caller_of(request),
                                        data=self.wire.event_in(request.data)),
            lambda event: self.wire.event_out(event, None),
            selectors.events(caller_of(request)))


class EventDetail(OpenADRView):
    scopes = {"GET": READ_TARGETED, "PUT": {WRITE_EVENTS}, "DELETE": {WRITE_EVENTS}}

    def get(self, request: Request, pk: str) -> Response:
        event = _one(request, selectors.events(caller_of(request)), pk, "event")
        visible = selectors.visible_labels(caller_of(request), selectors.Filters())
        return Response(self.wire.event_out(event, visible))

    def put(self, request: Request, pk: str) -> Response:
        event = _one(request, selectors.events(caller_of(request)), pk, "event")
        data = self.wire.event_in(request.data)
        event = services.save_event(caller=caller_of(request), data=data, event=event)
        return Response(self.wire.event_out(event, None))

    def delete(self, request: Request, pk: str) -> Response:
        event = _one(request, selectors.events(caller_of(request)), pk, "event")
        body = self.wire.event_out(event, None)
        services.delete_event(caller=caller_of(request), event=event)
        return Response(body)


class ReportList(OpenADRView):
    scopes = {"GET": READ_OWNED, "POST": {WRITE_REPORTS}}

    def get(self, request: Request) -> Response:
        filters = self.wire.filters(request.query_params)
        reports = self.page(request, selectors.reports(caller_of(request), filters))
        return Response([self.wire.report_out(r) for r in reports])

    def post(self, request: Request) -> Response:
        with collection_paused():  # a report may carry thousands of intervals
            return self.created(
                request, "REPORT",
                lambda: services.save_report(caller=caller_of(request),
                                             data=self.wire.report_in(request.data)),
                self.wire.report_out, selectors.reports(caller_of(request)))


class ReportDetail(OpenADRView):
    scopes = {"GET": READ_OWNED, "PUT": {WRITE_REPORTS}, "DELETE": {WRITE_REPORTS}}

    def get(self, request: Request, pk: str) -> Response:
        report = _one(request, selectors.reports(caller_of(request)), pk, "report")
        return Response(self.wire.report_out(report))

    def put(self, request: Request, pk: str) -> Response:
        report = _one(request, selectors.reports(caller_of(request)), pk, "report")
        with collection_paused():
            data = self.wire.report_in(request.data)
            report = services.save_report(caller=caller_of(request), data=data, report=report)
            return Response(self.wire.report_out(report))

    def delete(self, request: Request, pk: str) -> Response:
        report = _one(request, selectors.reports(caller_of(request)), pk, "report")
        body = self.wire.report_out(report)
        services.delete_report(caller=caller_of(request), report=report)
        return Response(body)


class SubscriptionList(OpenADRView):
    scopes = {"GET": READ_OWNED, "POST": {WRITE_SUBSCRIPTIONS}}

    def get(self, request: Request) -> Response:
        filters = self.wire.filters(request.query_params)
        queryset = self.wire.expressible_subscriptions(
            selectors.subscriptions(caller_of(request), filters))
        return Response([self.wire.subscription_out(s) for s in self.page(request, queryset)])

    def post(self, request: Request) -> Response:
        return self.created(
            request, "SUBSCRIPTION",
            lambda: services.save_subscription(caller=caller_of(request),
                                               data=self.wire.subscription_in(request.data)),
            self.wire.subscription_out,
            self.wire.expressible_subscriptions(selectors.subscriptions(caller_of(request))))


class SubscriptionDetail(OpenADRView):
    scopes = {"GET": READ_OWNED, "PUT": {WRITE_SUBSCRIPTIONS}, "DELETE": {WRITE_SUBSCRIPTIONS}}

    def _get(self, request: Request, pk: str):
        queryset = self.wire.expressible_subscriptions(selectors.subscriptions(caller_of(request)))
        return _one(request, queryset, pk, "subscription")

    def get(self, request: Request, pk: str) -> Response:
        return Response(self.wire.subscription_out(self._get(request, pk)))

    def put(self, request: Request, pk: str) -> Response:
        subscription = self._get(request, pk)
        data = self.wire.subscription_in(request.data)
        subscription = services.save_subscription(caller=caller_of(request), data=data,
                                                  subscription=subscription)
        return Response(self.wire.subscription_out(subscription))

    def delete(self, request: Request, pk: str) -> Response:
        subscription = self._get(request, pk)
        body = self.wire.subscription_out(subscription)
        services.delete_subscription(caller=caller_of(request), subscription=subscription)
        return Response(body)


class VenList(OpenADRView):
    scopes = {"GET": READ_OWNED, "POST": {WRITE_VENS}}

    def get(self, request: Request) -> Response:
        filters = self.wire.filters(request.query_params)
        vens = self.page(request, selectors.vens(caller_of(request), filters))
        return Response([self.wire.ven_out(v) for v in vens])

    def post(self, request: Request) -> Response:
        def create() -> Ven:
            data, resources = self.wire.ven_in(request.data, caller_of(request))
            return services.save_ven(caller=caller_of(request), data=data, resources=resources)

        return self.created(request, "VEN", create, self.wire.ven_out,
                            selectors.vens(caller_of(request)))


class VenDetail(OpenADRView):
    scopes = {"GET": READ_OWNED, "PUT": {WRITE_VENS}, "DELETE": {WRITE_VENS}}

    def get(self, request: Request, pk: str) -> Response:
        ven = _one(request, selectors.vens(caller_of(request)), pk, "ven")
        return Response(self.wire.ven_out(ven))

    def put(self, request: Request, pk: str) -> Response:
        ven = _one(request, selectors.vens(caller_of(request)), pk, "ven")
        data, resources = self.wire.ven_in(request.data, caller_of(request))
        ven = services.save_ven(caller=caller_of(request), data=data, ven=ven)
        return Response(self.wire.ven_out(ven))

    def delete(self, request: Request, pk: str) -> Response:
        ven = _one(request, selectors.vens(caller_of(request)), pk, "ven")
        body = self.wire.ven_out(ven)
        services.delete_ven(caller=caller_of(request), ven=ven)
        return Response(body)


class ResourceList(OpenADRView):
    """3.1 ``/resources`` and 3.0.1 ``/vens/{venID}/resources``."""

    scopes = {"GET": READ_OWNED, "POST": {WRITE_VENS}}

    def get(self, request: Request, ven_pk: str | None = None) -> Response:
        filters = self.wire.filters(request.query_params)
        if ven_pk is not None:
            _one(request, selectors.vens(caller_of(request)), ven_pk, "ven")
            filters = dataclasses.replace(filters, ven_id=ven_pk)
        resources = self.page(request, selectors.resources(caller_of(request), filters))
        return Response([self.wire.resource_out(r) for r in resources])

    def post(self, request: Request, ven_pk: str | None = None) -> Response:
        def create() -> Resource:
            data = self.wire.resource_in(request.data, caller_of(request))
            ven_id = ven_pk if ven_pk is not None else data.pop("ven_id")
            ven = _one(request, selectors.vens(caller_of(request)), ven_id, "ven")
            return services.save_resource(caller=caller_of(request), ven=ven, data=data)

        return self.created(request, "RESOURCE", create, self.wire.resource_out,
                            selectors.resources(caller_of(request)))


class ResourceDetail(OpenADRView):
    scopes = {"GET": READ_OWNED, "PUT": {WRITE_VENS}, "DELETE": {WRITE_VENS}}

    def _get(self, request: Request, pk: str, ven_pk: str | None):
        queryset = selectors.resources(caller_of(request))
        if ven_pk is not None:
            queryset = queryset.filter(ven_id=ven_pk)
        return _one(request, queryset, pk, "resource")

    def get(self, request: Request, pk: str, ven_pk: str | None = None) -> Response:
        return Response(self.wire.resource_out(self._get(request, pk, ven_pk)))

    def put(self, request: Request, pk: str, ven_pk: str | None = None) -> Response:
        resource = self._get(request, pk, ven_pk)
        data = self.wire.resource_in(request.data, caller_of(request))
        ven_id = data.pop("ven_id", resource.ven_id)
        ven = _one(request, selectors.vens(caller_of(request)), ven_id, "ven")
        resource = services.save_resource(caller=caller_of(request), ven=ven, data=data,
                                          resource=resource)
        return Response(self.wire.resource_out(resource))

    def delete(self, request: Request, pk: str, ven_pk: str | None = None) -> Response:
        resource = self._get(request, pk, ven_pk)
        body = self.wire.resource_out(resource)
        services.delete_resource(caller=caller_of(request), resource=resource)
        return Response(body)
