"""The statement list's filters (a django-filter FilterSet), shared by the settlement API
and the console."""

from __future__ import annotations

import django_filters as df
from django.db.models import QuerySet

from settlement.models import Statement
from settlement.services import Month
from vtn.api.query_filters import upper


class StatementFilterSet(df.FilterSet):
    month = df.CharFilter(method="filter_month", help_text="YYYY-MM (Europe/London)")
    operator = df.CharFilter(field_name="contract__operator__code", method=upper)
    fsp = df.CharFilter(field_name="contract__fsp__identifier")
    contract = df.CharFilter(field_name="contract__identifier")
    status = df.ChoiceFilter(choices=Statement.Status.choices)

    class Meta:
        model = Statement
        fields: list[str] = []

    def filter_month(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(month=Month.parse(value).first_day)  # BadRequest when not

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        return super().filter_queryset(queryset).prefetch_related("disputes")
