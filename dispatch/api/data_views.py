"""Meter readings, report intakes and declared availability in the dispatch API. Thin:
parse the query, call a selector, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatch import readings, selectors
from dispatch.api.filters import MeterReadingFilterSet, ReportIntakeFilterSet
from dispatch.api.serializers import (
    AvailabilitySerializer,
    MeterReadingSerializer,
    ReportIntakeSerializer,
)
from dispatch.api.views import READ, OperatorView, _int, _time
from dispatch.models import ReportIntake
from vtn.api.query_filters import filtered
from vtn.auth.authentication import caller_of
from vtn.auth.permissions import HasOperationScope
from vtn.auth.scopes import READ_ALL, READ_VEN_OBJECTS
from vtn.errors import BadRequest


class MeterReadings(OperatorView):
    scopes = {"GET": READ}

    @extend_schema(
        summary="Meter readings stored for settlement (current versions unless history)",
        parameters=[OpenApiParameter(name, str, description=text) for name, text in (
            ("operator", "network operator code"), ("fsp", "FSP identifier"),
            ("unit", "dispatch unit reference, or FSP/REF"),
            ("type", "|".join(readings.READING_TYPES)),
            ("from", "readings starting at or after this instant (ISO 8601)"),
            ("to", "readings starting before this instant (ISO 8601)"),
            ("history", "true: superseded versions too"))] + [
            OpenApiParameter("skip", int), OpenApiParameter("limit", int)],
        responses={200: MeterReadingSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = filtered(MeterReadingFilterSet, request.query_params, selectors.meter_readings())
        skip, limit = _int(request, "skip", 0, 2**31 - 1), _int(request, "limit", 500, 5000)
        return Response(MeterReadingSerializer(rows[skip:skip + limit], many=True).data)


class OperatorOrVen(BasePermission):
    message = "Only business-logic clients and FSP site VENs may read report intakes."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(caller_of(request), "is_bl", False) or
                    getattr(caller_of(request), "is_ven", False))


class ReportIntakes(APIView):
    """What the VTN made of each availability or meter-reading report. A VEN sees its own
    site's intakes only."""

    permission_classes = [HasOperationScope, OperatorOrVen]
    scopes = {"GET": frozenset({READ_ALL, READ_VEN_OBJECTS})}

    @extend_schema(
        summary="Outcomes of availability and meter-reading reports, newest first",
        parameters=[OpenApiParameter("operator", str), OpenApiParameter("fsp", str),
                    OpenApiParameter("kind", str, description="|".join(
                        ReportIntake.Kind.values)),
                    OpenApiParameter("report", str, description="report id"),
                    OpenApiParameter("limit", int)],
        responses={200: ReportIntakeSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = filtered(ReportIntakeFilterSet, request.query_params, selectors.intakes())
        if not getattr(caller_of(request), "is_bl", False):
            rows = rows.filter(site__ven__client_id=caller_of(request).client_id)
        limit = _int(request, "limit", 50, 500)
        return Response(ReportIntakeSerializer(rows[:limit], many=True).data)


class ContractAvailability(OperatorView):
    scopes = {"GET": READ}

    @extend_schema(
        summary="Declared availability against the contract over its service windows",
        parameters=[OpenApiParameter("from", str, required=True,
                                     description="ISO 8601 instant"),
                    OpenApiParameter("to", str, required=True,
                                     description="ISO 8601 instant, at most 93 days later")],
        responses={200: AvailabilitySerializer})
    def get(self, request: Request, operator: str, identifier: str) -> Response:
        start, end = _time(request, "from"), _time(request, "to")
        if start is None or end is None:
            raise BadRequest("from and to are required")
        if not start < end or (end - start).days > 93:
            raise BadRequest("to must be after from, by at most 93 days")
        contract = selectors.find_contract(identifier, operator=operator)
        return Response(selectors.availability(contract, start, end))
