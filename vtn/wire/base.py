"""What both wire formats share: metadata, query parsing and request validation."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone

from vtn import timing
from vtn.auth.caller import Caller
from vtn.errors import BadRequest
from vtn.models import Event, Program, Report, Resource, Subscription, Ven
from vtn.schemas import BodyError, validate_body
from vtn.selectors import Filters, Page

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
EVENT_PAYLOAD_DESCRIPTOR = "EVENT_PAYLOAD_DESCRIPTOR"
REPORT_PAYLOAD_DESCRIPTOR = "REPORT_PAYLOAD_DESCRIPTOR"
REPORT_ONLY_FIELDS = {"readingType", "accuracy", "confidence"}


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metadata(instance, object_type: str) -> dict:
    return {
        "id": instance.pk,
        "createdDateTime": rfc3339(instance.created),
        "modificationDateTime": rfc3339(instance.modified),
        "objectType": object_type,
    }


NOW = "0001-01-01T00:00:00Z"


def period_out(period: dict | None) -> dict | None:
    """An intervalPeriod with its defaults explicit: start "now" and duration PT0S."""
    if period is None:
        return None
    return {"start": period.get("start", NOW), "duration": period.get("duration", "PT0S"),
            **{k: v for k, v in period.items() if k not in ("start", "duration")}}


def intervals_out(intervals: list | None) -> list:
    return [{**interval, "intervalPeriod": period_out(interval["intervalPeriod"])}
            if interval.get("intervalPeriod") is not None else interval
            for interval in intervals or []]


def report_resources_out(resources: list) -> list:
    return [compact({**item, "intervalPeriod": period_out(item.get("intervalPeriod")),
                     "intervals": intervals_out(item.get("intervals"))})
            for item in resources]


def operations_out(operations: list) -> list:
    """Subscription objectOperations with the nullable bearerToken always present."""
    return [{"bearerToken": None, **operation} for operation in operations]


def compact(body: dict) -> dict:
    """Drop optional properties that are unset (the documents allow omitting them)."""
    return {key: value for key, value in body.items() if value is not None}


def with_descriptor_types(descriptors: list | None, default: str) -> list | None:
    """Fill the objectType of payload descriptors that lack one (3.0.1 made it optional)."""
    if descriptors is None:
        return None
    result = []
    for descriptor in descriptors:
        descriptor = dict(descriptor)
        if "objectType" not in descriptor:
            kind = REPORT_PAYLOAD_DESCRIPTOR if REPORT_ONLY_FIELDS & descriptor.keys() else default
            descriptor["objectType"] = kind
        result.append(descriptor)
    return result


def _check_storable(value: object, path: str = "body") -> None:
    """Reject what no database can store faithfully: NUL characters, non-finite numbers."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(f"{path}: NUL characters are not allowed.")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequest(f"{path}: numbers must be finite.")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_INT64:
            raise BadRequest(f"{path}: integer out of range.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, path)
            _check_storable(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_storable(item, f"{path}[{index}]")


# Names the documents leave unbounded (eventName, reportName, ...) get the bound the
# documents give the others (programName, venName, resourceName: 128).
MAX_NAME_LENGTH = 128


def _check_body(body: object) -> None:
    """Refuse a request body that no database can store faithfully (NUL characters,
    non-finite numbers, integers past 64 bits: see :func:`_check_storable`) or that has
    no sane bound: names over ``MAX_NAME_LENGTH`` characters, durations past P9999Y,
    interval start date-times outside the years timing.EARLIEST_YEAR to
    timing.LATEST_YEAR. The first fault of the first kind is named if there is one, else
    the first of the second kind.

    One walk does both, and calls nothing for the plain values of a report's hundreds of
    intervals that pass (one walk per kind, a call per value, was a tenth of a report)."""
    bounds: list[BadRequest] = []  # the first bound broken
    if isinstance(body, (dict, list)):
        _walk(body, "body", bounds, set())
    else:
        _check_storable(body)
    if bounds:
        raise bounds[0]


def _walk(node: dict | list, path: str, bounds: list[BadRequest], durations: set[str]) -> None:
    """:func:`_check_body` on a container: storage faults raise at once, the first bound
    broken is appended to ``bounds``; ``durations`` holds those already found sane."""
    members = isinstance(node, dict)
    for key, item in (node.items() if members else enumerate(node)):  # type: ignore[union-attr]
        if members and isinstance(key, str) and "\x00" in key:
            raise BadRequest(f"{path}: NUL characters are not allowed.")
        if isinstance(item, str):
            if "\x00" in item:
                raise BadRequest(f"{_at(path, key, members)}: NUL characters are not allowed.")
            if members and not bounds and isinstance(key, str) and (
                    key == "start" or key.endswith("Name") or (
                    key == "duration" and item not in durations)):
                _check_bound(path, key, item, bounds, durations)
        elif isinstance(item, (dict, list)):
            _walk(item, _at(path, key, members), bounds, durations)
        elif type(item) is float:
            if not math.isfinite(item):
                raise BadRequest(f"{_at(path, key, members)}: numbers must be finite.")
        elif type(item) is int:
            if abs(item) > MAX_INT64:
                raise BadRequest(f"{_at(path, key, members)}: integer out of range.")
        elif item is not None and type(item) is not bool:
            _check_storable(item, _at(path, key, members))


def _at(path: str, key: object, member: bool) -> str:
    """Where a member (``path.key``) or an item (``path[index]``) of ``path`` is."""
    return f"{path}.{key}" if member else f"{path}[{key}]"


def _check_bound(path: str, key: str, text: str, bounds: list[BadRequest],
                 durations: set[str]) -> None:
    try:
        if key.endswith("Name") and len(text) > MAX_NAME_LENGTH:
            raise ValueError(f"at most {MAX_NAME_LENGTH} characters")
        if key == "duration":
            timing.check_duration(text)
            durations.add(text)  # a report repeats PT30M hundreds of times
        if key == "start" and path.endswith("intervalPeriod"):
            timing.check_datetime(text)
    except ValueError as exc:
        where = f"{path}.{key}".removeprefix("body.")
        bounds.append(BadRequest(f"{where}: {exc}."))


class WireFormat:
    """Base of the two wire formats. Subclasses map bodies to and from the model."""

    version: str = ""

    # -- requests --------------------------------------------------------------------------

    def validated(self, component: str, body: object) -> dict:
        _check_body(body)
        try:
            data = validate_body(self.version, component, body)
        except BodyError as exc:
            raise BadRequest(f"The {component} body does not conform to OpenADR {self.version}.",
                             errors=exc.errors) from exc
        priority = data.get("priority")
        if isinstance(priority, int) and priority > MAX_INT32:
            raise BadRequest(f"priority: must be at most {MAX_INT32}.")
        return data

    # -- queries ---------------------------------------------------------------------------

    def page(self, query: QueryDict) -> Page:
        skip = self._int(query, "skip", 0, 0, MAX_INT32)
        limit = self._int(query, "limit", settings.VTN_PAGE_DEFAULT, 0, settings.VTN_PAGE_MAX)
        return Page(skip=skip, limit=limit)

    def filters(self, query: QueryDict) -> Filters:
        for key, values in query.lists():
            for value in values:
                _check_storable(value, f"query parameter {key}")
        return Filters(
            target_labels=self.target_labels(query),
            program_id=self._object_id(query, "programID"),
            event_id=self._object_id(query, "eventID"),
            client_name=self._name(query, "clientName"),
            ven_name=self._name(query, "venName"),
            ven_id=self._object_id(query, "venID"),
            resource_name=self._name(query, "resourceName"),
            objects=frozenset(query.getlist("objects")) or None,
            active_at=self.active_at(query),
        )

    def target_labels(self, query: QueryDict) -> frozenset[str] | None:
        raise NotImplementedError

    def active_at(self, query: QueryDict) -> datetime | None:
        return None

    @staticmethod
    def _int(query: QueryDict, name: str, default: int, low: int, high: int) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise BadRequest(f"{name} must be an integer.") from exc
        if not low <= value <= high:
            raise BadRequest(f"{name} must be between {low} and {high}.")
        return value

    @staticmethod
    def _object_id(query: QueryDict, name: str) -> str | None:
        value = query.get(name)
        if value is None:
            return None
        if not value or len(value) > 128 or not all(c.isalnum() or c in "_-" for c in value) \
                or not value.isascii():
            raise BadRequest(f"{name} must be an object ID (letters, digits, '_' and '-').")
        return value

    @staticmethod
    def _name(query: QueryDict, name: str) -> str | None:
        value = query.get(name)
        if value is None:
            return None
        if not 1 <= len(value) <= 128:
            raise BadRequest(f"{name} must be 1 to 128 characters long.")
        return value

    @staticmethod
    def _labels(values: list[str]) -> frozenset[str] | None:
        for value in values:
            if not 1 <= len(value) <= 128:
                raise BadRequest("Each target must be 1 to 128 characters long.")
        return frozenset(values) if values else None

    @staticmethod
    def now() -> datetime:
        return timezone.now()

    def expressible_subscriptions(self, queryset: QuerySet) -> QuerySet:
        """Subscriptions this version can represent (all, unless a subclass narrows it)."""
        return queryset

    # -- objects: each version maps request bodies in and objects out ---------------------
    # ``visible`` is the caller's visible target labels (None: all of them).

    def program_in(self, body: object) -> dict:
        raise NotImplementedError

    def program_out(self, program: Program, visible: frozenset[str] | None) -> dict:
        raise NotImplementedError

    def event_in(self, body: object) -> dict:
        raise NotImplementedError

    def event_out(self, event: Event, visible: frozenset[str] | None) -> dict:
        raise NotImplementedError

    def report_in(self, body: object) -> dict:
        raise NotImplementedError

    def report_out(self, report: Report) -> dict:
        raise NotImplementedError

    def subscription_in(self, body: object) -> dict:
        raise NotImplementedError

    def subscription_out(self, subscription: Subscription) -> dict:
        raise NotImplementedError

    def ven_in(self, body: object, caller: Caller) -> tuple[dict, list[dict]]:
        raise NotImplementedError

    def ven_out(self, ven: Ven) -> dict:
        raise NotImplementedError

    def resource_in(self, body: object, caller: Caller) -> dict:
        raise NotImplementedError

    def resource_out(self, resource: Resource) -> dict:
        raise NotImplementedError
