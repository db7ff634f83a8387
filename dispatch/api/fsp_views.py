"""The FSP back-office API (clients with role ``fsp``, see ``dispatch.fsp_office``): the
FSP's sites, dispatches with their acknowledgements, and declared availability, across
its registrations with every operator that share its FSP reference; and its meter
readings posted in bulk (``dispatch.intake.record_bulk_readings``). Statements are in
the settlement API. Thin: parse, call a selector, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatch import fsp_office, intake, readings
from dispatch.api.parsers import BulkReadingsParser
from dispatch.api.serializers import (
    BulkReadingsRequestSerializer,
    BulkReadingsSerializer,
    DispatchHistorySerializer,
    DispatchSerializer,
    SiteSerializer,
)
from dispatch.api.views import _int, _time
from vtn.auth.authentication import caller_of
from vtn.auth.permissions import HasOperationScope
from vtn.auth.scopes import READ_FSP, WRITE_METER_DATA
from vtn.errors import BadRequest
from vtn.memory import collection_paused

READ = frozenset({READ_FSP})
WRITE_READINGS = frozenset({WRITE_METER_DATA})


class IsFspOffice(BasePermission):
    message = "Only an FSP's back-office clients may use the FSP API."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(caller_of(request), "is_fsp", False))


class FspView(APIView):
    permission_classes = [HasOperationScope, IsFspOffice]
    scopes = {"GET": READ}

    @staticmethod
    def office(request: Request) -> fsp_office.Office:
        return fsp_office.office_of_client(caller_of(request).client_id)


class FspSites(FspView):
    @extend_schema(summary="The FSP's sites with their comms state and units",
                   responses={200: SiteSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(SiteSerializer(fsp_office.sites(self.office(request)), many=True).data)


class FspDispatches(FspView):
    @extend_schema(summary="The FSP's dispatches, newest first, with acknowledgements",
                   parameters=[OpenApiParameter("skip", int), OpenApiParameter("limit", int)],
                   responses={200: DispatchSerializer(many=True)})
    def get(self, request: Request) -> Response:
        skip, limit = _int(request, "skip", 0, 2**31 - 1), _int(request, "limit", 50, 200)
        rows = fsp_office.dispatches(self.office(request))[skip:skip + limit]
        return Response(DispatchSerializer(rows, many=True).data)


class FspDispatchDetail(FspView):
    @extend_schema(summary="One of the FSP's dispatches with every revision and "
                           "acknowledgement", responses={200: DispatchHistorySerializer})
    def get(self, request: Request, operator: str, reference: str) -> Response:
        found = fsp_office.find_dispatch(self.office(request), operator, reference)
        return Response(DispatchHistorySerializer(found).data)


class FspAvailability(FspView):
    @extend_schema(summary="The FSP's current availability declarations in a range",
                   parameters=[OpenApiParameter("from", str, required=True),
                               OpenApiParameter("to", str, required=True)])
    def get(self, request: Request) -> Response:
        start, end = _time(request, "from"), _time(request, "to")
        if start is None or end is None or not start < end or (end - start).days > 93:
            raise BadRequest("from and to are required, to after from by at most 93 days")
        return Response([fsp_office.declaration_as_dict(row) for row in
                         fsp_office.declarations(self.office(request), start, end)])


class FspMeterReadings(FspView):
    scopes = {"POST": WRITE_READINGS}
    parser_classes = [BulkReadingsParser]

    @extend_schema(
        summary="Post meter readings of the FSP's units in bulk (all or nothing)",
        description="Each row becomes a USAGE (kwh) and/or GB_REACTIVE (kvarh) reading. "
                    "A reading already held is a duplicate; a different one for the same "
                    "period is refused unless the row is a correction, which stores a new "
                    "version. Any faulty row, unit outside the FSP, conflict, or unit whose "
                    "site must sign its readings refuses the whole request with a problem "
                    "listing the rows (errors), and nothing is stored. Sending the same "
                    "request again stores nothing more (duplicates).",
        request=BulkReadingsRequestSerializer, responses={200: BulkReadingsSerializer})
    def post(self, request: Request) -> Response:
        with collection_paused():
            body = request.data
            if isinstance(body, readings.BulkBody):
                rows: object = body.readings
            elif isinstance(body, dict) and set(body) == {"readings"}:
                rows = body["readings"]
            else:
                raise BadRequest("the body is an object with one member, readings (a list "
                                 "of rows)")
            taken = intake.record_bulk_readings(
                office=self.office(request), rows=rows,
                client_id=caller_of(request).client_id)
        return Response(BulkReadingsSerializer(taken).data)
