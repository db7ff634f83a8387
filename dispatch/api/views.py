"""Operator API for dispatches (business-logic clients) and the public JWKS. Thin: parse,
call a service or selector, render; errors are RFC 7807 problem documents."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.dateparse import parse_datetime
from django.views import View
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatch import audit, issuing, onboarding, programs, scope, selectors, site_keys
from dispatch.api.filters import DispatchFilterSet, SiteFilterSet
from dispatch.api.serializers import (
    AuditExportSerializer,
    DispatchHistorySerializer,
    DispatchSerializer,
    IssueSerializer,
    ProductParametersRequestSerializer,
    ProductParametersSerializer,
    ReviseSerializer,
    SiteKeyRequestSerializer,
    SiteKeySerializer,
    SiteSerializer,
    StopSerializer,
    UnitCapabilitiesRequestSerializer,
    UnitSerializer,
    timings_from,
)
from dispatch.models import CommsState, SiteSigningKey
from dispatch.rules import STATUSES
from vtn.api import idempotency
from vtn.api.query_filters import filtered
from vtn.auth import mtls
from vtn.auth.authentication import caller_of
from vtn.auth.permissions import HasOperationScope
from vtn.auth.scopes import READ_ALL, READ_VEN_OBJECTS, WRITE_EVENTS, WRITE_REPORTS
from vtn.errors import BadRequest, Forbidden

READ = frozenset({READ_ALL})
WRITE = frozenset({WRITE_EVENTS})


class IsBusinessLogic(BasePermission):
    message = "Only business-logic (operator) clients may use the dispatch API."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(caller_of(request), "is_bl", False))


class OperatorView(APIView):
    permission_classes = [HasOperationScope, IsBusinessLogic]

    @staticmethod
    def scope(request: Request) -> scope.Scope:
        """The network operators the calling client may see and act for."""
        return operator_scope(request)

    @staticmethod
    def parse(serializer_class, request: Request) -> dict:
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def operator_scope(request: Request) -> scope.Scope:
    return scope.for_client(caller_of(request).client_id, mtls.client_address(request))


def _time(request: Request, name: str):
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = parse_datetime(raw)
    if value is None or value.tzinfo is None:
        raise BadRequest(f"{name} must be an ISO 8601 date-time with a time zone")
    return value


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or int(raw) > high:
        raise BadRequest(f"{name} must be an integer from 0 to {high}")
    return int(raw)


class DispatchList(OperatorView):
    scopes = {"GET": READ, "POST": WRITE}

    @extend_schema(
        summary="List dispatches, newest first",
        parameters=[OpenApiParameter(name, str, description=text) for name, text in (
            ("operator", "network operator code"), ("fsp", "FSP identifier"),
            ("unit", "dispatch unit reference"), ("status", "|".join(STATUSES)),
            ("product", "product code"),
            ("from", "service period ends after this instant (ISO 8601)"),
            ("to", "service period starts before this instant (ISO 8601)"))] + [
            OpenApiParameter("skip", int), OpenApiParameter("limit", int)],
        responses={200: DispatchSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = filtered(DispatchFilterSet, request.query_params,
                        selectors.dispatches(scope=self.scope(request)))
        skip, limit = _int(request, "skip", 0, 2**31 - 1), _int(request, "limit", 50, 200)
        return Response(DispatchSerializer(rows[skip:skip + limit], many=True).data)

    @extend_schema(summary="Issue a dispatch (revision 1)", request=IssueSerializer,
                   responses={201: DispatchHistorySerializer})
    def post(self, request: Request) -> Response:
        data = self.parse(IssueSerializer, request)
        unit = selectors.find_unit(data["unit"], fsp=data.get("fsp"),
                                   operator=data.get("operator"), scope=self.scope(request))
        product = programs.find_product(data["product"]) if data.get("product") else None
        default_type = (product.setpoint_types[0] if product else
                        _default_setpoint_type(unit, data.get("contract")))
        dispatch = issuing.issue_dispatch(
            unit=unit, product=product, contract=data.get("contract"),
            reference=data.get("reference"), service_start=data["serviceStart"],
            service_end=data["serviceEnd"], status=data["status"],
            urgency=data.get("urgency"),
            timings=timings_from(data.get("serviceTimings", []), default_type),
            issued_by=caller_of(request).client_id, reason=data["reason"],
            confirm_comms_loss=data["confirmCommsLoss"])
        return Response(DispatchHistorySerializer(dispatch).data,
                        status=status.HTTP_201_CREATED)


def _default_setpoint_type(unit, contract: str | None) -> str:
    contracts = unit.contracts.select_related("product")
    if contract:
        contracts = contracts.filter(identifier=contract)
    first = contracts.first()
    return first.product.setpoint_types[0] if first else "delta"


class DispatchDetail(OperatorView):
    scopes = {"GET": READ}

    @extend_schema(summary="A dispatch with its full revision history",
                   responses={200: DispatchHistorySerializer})
    def get(self, request: Request, operator: str, reference: str) -> Response:
        dispatch = selectors.find_dispatch(reference, operator=operator,
                                           scope=self.scope(request))
        return Response(DispatchHistorySerializer(dispatch).data)


class DispatchRevisions(OperatorView):
    scopes = {"POST": WRITE}

    @extend_schema(summary="Revise a dispatch; unspecified fields carry over",
                   request=ReviseSerializer, responses={201: DispatchHistorySerializer})
    def post(self, request: Request, operator: str, reference: str) -> Response:
        data = self.parse(ReviseSerializer, request)
        dispatch = selectors.find_dispatch(reference, operator=operator,
                                           scope=self.scope(request))
        timings = None
        if "serviceTimings" in data:
            timings = timings_from(data["serviceTimings"],
                                   dispatch.contract.product.setpoint_types[0])
        issuing.revise_dispatch(
            dispatch=dispatch, service_start=data.get("serviceStart"),
            service_end=data.get("serviceEnd"), timings=timings, status=data.get("status"),
            urgency=data.get("urgency"), expected_revision=data.get("expectedRevision"),
            issued_by=caller_of(request).client_id, reason=data["reason"])
        dispatch.refresh_from_db()
        return Response(DispatchHistorySerializer(dispatch).data,
                        status=status.HTTP_201_CREATED)


class DispatchStop(OperatorView):
    scopes = {"POST": WRITE}
    emergency = False

    @extend_schema(summary="Stop a dispatch (a final revision)", request=StopSerializer,
                   responses={201: DispatchHistorySerializer})
    def post(self, request: Request, operator: str, reference: str) -> Response:
        data = self.parse(StopSerializer, request)
        dispatch = selectors.find_dispatch(reference, operator=operator,
                                           scope=self.scope(request))
        issuing.stop_dispatch(dispatch=dispatch, emergency=self.emergency,
                              expected_revision=data.get("expectedRevision"),
                              issued_by=caller_of(request).client_id, reason=data["reason"])
        dispatch.refresh_from_db()
        return Response(DispatchHistorySerializer(dispatch).data,
                        status=status.HTTP_201_CREATED)


class DispatchEmergencyStop(DispatchStop):
    emergency = True

    @extend_schema(summary="Emergency-stop a dispatch (final, urgency emergency, priority 0)",
                   request=StopSerializer, responses={201: DispatchHistorySerializer})
    def post(self, request: Request, operator: str, reference: str) -> Response:
        return super().post(request, operator, reference)


class ProductParameters(OperatorView):
    scopes = {"GET": READ, "PUT": WRITE}

    @extend_schema(summary="The timing parameters an operator's product applies (its own "
                           "values, or the product's defaults)",
                   responses={200: ProductParametersSerializer})
    def get(self, request: Request, operator: str, product: str) -> Response:
        found = selectors.find_operator(operator, scope=self.scope(request))
        return Response(ProductParametersSerializer(programs.product_parameter_settings(
            found, programs.find_product(product))).data)

    @extend_schema(summary="Set an operator's own product parameters (audited, published at "
                           "once in the operator's OpenADR program)",
                   request=ProductParametersRequestSerializer,
                   responses={200: ProductParametersSerializer})
    def put(self, request: Request, operator: str, product: str) -> Response:
        data = self.parse(ProductParametersRequestSerializer, request)
        return Response(ProductParametersSerializer(programs.set_product_parameters(
            operator=selectors.find_operator(operator, scope=self.scope(request)).code,
            product=product,
            changes=data["parameters"], changed_by=caller_of(request).client_id,
            reason=data["reason"])).data)


class UnitCapabilities(OperatorView):
    scopes = {"GET": READ, "PUT": WRITE}

    @extend_schema(summary="A dispatch unit with its capabilities (kW, kVAr)",
                   responses={200: UnitSerializer})
    def get(self, request: Request, operator: str, fsp: str, unit: str) -> Response:
        found = selectors.find_unit(unit, fsp=fsp, operator=operator, scope=self.scope(request))
        return Response(UnitSerializer(found).data)

    @extend_schema(summary="Change a unit's capabilities: real (kW) and reactive (kVAr) "
                           "power (validated against its contracts, audited)",
                   request=UnitCapabilitiesRequestSerializer,
                   responses={200: UnitSerializer})
    def put(self, request: Request, operator: str, fsp: str, unit: str) -> Response:
        data = self.parse(UnitCapabilitiesRequestSerializer, request)
        found = selectors.find_unit(unit, fsp=fsp, operator=operator, scope=self.scope(request))
        changes = {name: data[key] for key, name in (("capacityKw", "capacity_kw"),
                                                     ("capacityKvar", "capacity_kvar"))
                   if key in data}
        return Response(UnitSerializer(onboarding.set_unit_capabilities(
            unit=found, changed_by=caller_of(request).client_id, reason=data["reason"],
            **changes)).data)


class DispatchAuditExport(OperatorView):
    scopes = {"GET": READ}

    @extend_schema(summary="The audit export of a dispatch (verify offline with "
                           "`gbflex-audit verify FILE`)",
                   responses={200: AuditExportSerializer})
    def get(self, request: Request, operator: str, reference: str) -> Response:
        dispatch = selectors.find_dispatch(reference, operator=operator,
                                           scope=self.scope(request))
        return Response(audit.export(dispatch))


class SiteList(OperatorView):
    scopes = {"GET": READ}

    @extend_schema(summary="FSP sites with last-seen time, comms state and transitions",
                   parameters=[OpenApiParameter("operator", str), OpenApiParameter("fsp", str),
                               OpenApiParameter("state", str, description="|".join(
                                   CommsState.values))],
                   responses={200: SiteSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = filtered(SiteFilterSet, request.query_params,
                        selectors.sites(self.scope(request)))
        return Response(SiteSerializer(rows, many=True).data)


class IsVen(BasePermission):
    message = "Only an FSP site's VEN client may manage its site signing keys."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(caller_of(request), "is_ven", False))


class VenView(APIView):
    permission_classes = [HasOperationScope, IsVen]


class SiteKeys(VenView):
    scopes = {"GET": frozenset({READ_VEN_OBJECTS, READ_ALL}), "POST": frozenset({WRITE_REPORTS})}

    @extend_schema(summary="The calling VEN's site signing keys",
                   responses={200: SiteKeySerializer(many=True)})
    def get(self, request: Request) -> Response:
        site = site_keys.site_of_client(caller_of(request).client_id)
        return Response(SiteKeySerializer(site.signing_keys.all(), many=True).data)

    @extend_schema(summary="Register a public key the caller's site signs acknowledgements "
                           "with", request=SiteKeyRequestSerializer,
                   responses={201: SiteKeySerializer})
    def post(self, request: Request) -> Response:
        def create() -> SiteSigningKey:
            serializer = SiteKeyRequestSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            site = site_keys.site_of_client(caller_of(request).client_id)
            if data.get("fsp", site.fsp.identifier) != site.fsp.identifier or \
                    data.get("site", site.name) != site.name:
                raise Forbidden("a VEN registers keys for its own site only")
            return site_keys.register_site_key(site=site, jwk=data["jwk"])

        own = SiteSigningKey.objects.select_related("site__fsp__operator").filter(
            site__ven__client_id=caller_of(request).client_id)
        return idempotency.create_once(request, object_type="SITE_KEY", create=create,
                                       find=lambda pk: own.filter(pk=pk).first(),
                                       render=lambda key: SiteKeySerializer(key).data)


class SiteKeyRevoke(VenView):
    scopes = {"POST": frozenset({WRITE_REPORTS})}

    @extend_schema(summary="Revoke one of the caller's site keys", request=None,
                   responses={200: SiteKeySerializer})
    def post(self, request: Request, kid: str) -> Response:
        site = site_keys.site_of_client(caller_of(request).client_id)
        key = site_keys.revoke_site_key(site=site, kid=kid)
        return Response(SiteKeySerializer(key).data)


class Jwks(View):
    """The operators' public signing keys (RFC 7517), unauthenticated and cacheable."""

    def get(self, request: HttpRequest) -> JsonResponse:
        response = JsonResponse(selectors.jwks())
        response["Content-Type"] = "application/jwk-set+json"
        response["Cache-Control"] = f"public, max-age={settings.DISPATCH_JWKS_MAX_AGE}"
        return response
