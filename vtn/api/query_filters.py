"""Query-string filters of the operator APIs (dispatch, settlement): django-filter
FilterSets, with a refused query answered as an RFC 7807 problem."""

from __future__ import annotations

import django_filters as df
from django import forms
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from vtn.errors import BadRequest


class AwareDateTimeField(forms.Field):
    """An ISO 8601 date-time that names its time zone."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            parsed = parse_datetime(str(value))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise forms.ValidationError("must be an ISO 8601 date-time with a time zone")
        return parsed


class AwareDateTimeFilter(df.Filter):
    field_class = AwareDateTimeField


def upper(queryset: QuerySet, name: str, value: str) -> QuerySet:
    """Filter method for codes stored upper-case (operators, products)."""
    return queryset.filter(**{name: value.upper()})


def filtered(filterset_class: type[df.FilterSet], query, queryset: QuerySet) -> QuerySet:
    """``queryset`` narrowed by ``filterset_class`` over the query parameters; a value the
    FilterSet refuses is a BadRequest naming every bad parameter."""
    filterset = filterset_class(query, queryset=queryset)
    if not filterset.is_valid():
        errors = [f"{name}: {message}" for name, messages in filterset.errors.items()
                  for message in messages]
        raise BadRequest("The query parameters are not valid.", errors=errors)
    return filterset.qs
