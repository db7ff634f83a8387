"""Settlement API: operators compute, list, issue, resolve and finalise statements; an
FSP's VEN reads its own issued statements and accepts or disputes them. Thin: parse,
call a service or selector, render."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from settlement import exports, inputs, selectors, services
from settlement.api.serializers import (
    ComputeSerializer,
    DisputeSerializer,
    ResolveSerializer,
    StatementDocumentSerializer,
    StatementSerializer,
)
from settlement.filters import StatementFilterSet
from settlement.models import Statement
from vtn.api.query_filters import filtered
from vtn.auth.authentication import caller_of
from vtn.auth.permissions import HasOperationScope
from vtn.auth.scopes import READ_ALL, READ_VEN_OBJECTS, WRITE_EVENTS, WRITE_REPORTS
from vtn.errors import BadRequest

READ = frozenset({READ_ALL, READ_VEN_OBJECTS})


def _operator(request: Request) -> bool:
    return bool(getattr(caller_of(request), "is_bl", False))


class OperatorOrVen(BasePermission):
    message = "Only business-logic clients and FSP site VENs may use the settlement API."

    def has_permission(self, request, view) -> bool:
        return _operator(request) or bool(getattr(caller_of(request), "is_ven", False))


class IsOperator(BasePermission):
    message = "Only business-logic (operator) clients may do this."

    def has_permission(self, request, view) -> bool:
        return _operator(request)


class IsVen(BasePermission):
    message = "Only the FSP's VEN may answer a statement."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(caller_of(request), "is_ven", False))


def _parse(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class StatementList(APIView):
    permission_classes = [HasOperationScope, OperatorOrVen]
    scopes = {"GET": READ, "POST": frozenset({WRITE_EVENTS})}

    @extend_schema(summary="Statements, newest month first (an FSP sees its own, issued)",
                   parameters=[OpenApiParameter(n, str) for n in (
                       "month", "operator", "fsp", "contract", "status")],
                   responses={200: StatementSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = filtered(StatementFilterSet, request.query_params, selectors.visible_statements(
            client_id=caller_of(request).client_id, is_operator=_operator(request)))
        return Response(StatementSerializer(rows[:500], many=True).data)

    @extend_schema(summary="Compute (or refresh) a contract's statement for a month now",
                   request=ComputeSerializer, responses={200: StatementDocumentSerializer})
    def post(self, request: Request) -> Response:
        if not _operator(request):
            self.permission_denied(request, message=IsOperator.message)
        data = _parse(ComputeSerializer, request)
        contract = inputs.find_contract(data["contract"], operator=data["operator"])
        row = services.settle_month(contract=contract, month=services.Month.parse(data["month"]))
        return Response(StatementDocumentSerializer(row).data)


class StatementDetail(APIView):
    permission_classes = [HasOperationScope, OperatorOrVen]
    scopes = {"GET": READ}

    @extend_schema(summary="One statement with its document",
                   responses={200: StatementDocumentSerializer})
    def get(self, request: Request, statement_id: str) -> Response:
        row = selectors.find_statement(statement_id, client_id=caller_of(request).client_id,
                                       is_operator=_operator(request))
        return Response(StatementDocumentSerializer(row).data)


class StatementExport(APIView):
    permission_classes = [HasOperationScope, OperatorOrVen]
    scopes = {"GET": READ}

    @extend_schema(summary="The statement as a file: canonical JSON, CSV or UFTP XML",
                   parameters=[OpenApiParameter("format", str, description="json|csv|uftp")],
                   responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, statement_id: str) -> HttpResponse:
        fmt = request.query_params.get("format", "json")
        if fmt not in exports.FORMATS:
            raise BadRequest(f"format must be one of {', '.join(exports.FORMATS)}")
        row = selectors.find_statement(statement_id, client_id=caller_of(request).client_id,
                                       is_operator=_operator(request))
        content_type, render = exports.FORMATS[fmt]
        response = HttpResponse(render(row.document), content_type=content_type)
        name = exports.file_name(operator=row.contract.operator.code,
                                 contract=row.contract.identifier, month=row.month,
                                 version=row.version, fmt=fmt)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class StatementAction(APIView):
    """POST statements/{id}/<action>: the lifecycle, each action for its party."""

    scopes = {"POST": frozenset({WRITE_EVENTS})}
    permission_classes = [HasOperationScope, IsOperator]

    def act(self, request: Request, row: Statement) -> Statement:
        raise NotImplementedError

    def post(self, request: Request, statement_id: str) -> Response:
        row = selectors.find_statement(statement_id, client_id=caller_of(request).client_id,
                                       is_operator=_operator(request))
        done = self.act(request, row)
        done.refresh_from_db()
        return Response(StatementSerializer(done).data)


class IssueStatement(StatementAction):
    @extend_schema(summary="Issue a draft to the FSP", request=None,
                   responses={200: StatementSerializer})
    def post(self, request: Request, statement_id: str) -> Response:
        return super().post(request, statement_id)

    def act(self, request, row):
        return services.issue(statement_id=row.pk)


class FinaliseStatement(StatementAction):
    @extend_schema(summary="Finalise an accepted statement (or a disputed one whose "
                           "disputes are resolved)", request=None,
                   responses={200: StatementSerializer})
    def post(self, request: Request, statement_id: str) -> Response:
        return super().post(request, statement_id)

    def act(self, request, row):
        return services.finalise(statement_id=row.pk)


class ResolveStatement(StatementAction):
    @extend_schema(summary="Resolve the disputes of a statement", request=ResolveSerializer,
                   responses={200: StatementSerializer})
    def post(self, request: Request, statement_id: str) -> Response:
        return super().post(request, statement_id)

    def act(self, request, row):
        data = _parse(ResolveSerializer, request)
        return services.resolve(statement_id=row.pk, resolution=data["resolution"])


class AcceptStatement(StatementAction):
    scopes = {"POST": frozenset({WRITE_REPORTS})}
    permission_classes = [HasOperationScope, IsVen]

    @extend_schema(summary="The FSP accepts an issued statement", request=None,
                   responses={200: StatementSerializer})
    def post(self, request: Request, statement_id: str) -> Response:
        return super().post(request, statement_id)

    def act(self, request, row):
        return services.accept(statement_id=row.pk, client_id=caller_of(request).client_id)


class DisputeStatement(StatementAction):
    scopes = {"POST": frozenset({WRITE_REPORTS})}
    permission_classes = [HasOperationScope, IsVen]

    @extend_schema(summary="The FSP disputes an issued statement, whole or by line",
                   request=DisputeSerializer, responses={200: StatementSerializer})
    def post(self, request: Request, statement_id: str) -> Response:
        return super().post(request, statement_id)

    def act(self, request, row):
        data = _parse(DisputeSerializer, request)
        services.dispute(statement_id=row.pk, client_id=caller_of(request).client_id,
                         reason=data["reason"], lines=[dict(x) for x in data["lines"]])
        return row
