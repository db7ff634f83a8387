"""The API's side of idempotent creates (see :mod:`vtn.idempotency` for the rules):
read the ``Idempotency-Key`` header, create at most once, answer a replay or a refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import models, transaction
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from vtn.api.problems import PROBLEM_CONTENT_TYPE, problem_body
from vtn.auth.authentication import caller_of
from vtn.errors import BadRequest
from vtn.idempotency import (
    HEADER,
    PROBLEM_KEY_REUSED,
    PROBLEM_OBJECT_GONE,
    REPLAYED_HEADER,
    VALID_KEY,
    Fingerprint,
    claim,
    live_record,
)
from vtn.models import IdempotencyKey

# The model of the object a creating POST makes.
M = TypeVar("M", bound=models.Model)


def key_of(request: Request) -> str | None:
    """The request's Idempotency-Key, None without one; 400 when it is malformed."""
    key = request.headers.get(HEADER)
    if key is not None and not VALID_KEY.fullmatch(key):
        raise BadRequest(f"{HEADER} must be 1 to 255 printable ASCII characters.")
    return key


def create_once(request: Request, *, object_type: str, create: Callable[[], M],
                find: Callable[[str], M | None], render: Callable[[M], dict]) -> Response:
    """Answer a creating POST: ``create()`` at most once per client and Idempotency-Key.

    ``create`` parses the request and makes the object (raising the API's problems),
    ``find(object_id)`` returns the object as the caller may see it now (None if gone),
    ``render(object)`` gives its body in the request's wire format. Without a key this
    is ``create()`` answered with 201.
    """
    key = key_of(request)
    if key is None:
        return Response(render(create()), status=status.HTTP_201_CREATED)
    client_id = caller_of(request).client_id
    fingerprint = Fingerprint.of(request)
    earlier = live_record(client_id, key)
    if earlier is None:
        with transaction.atomic():
            record = claim(client_id, key, fingerprint, object_type)
            if record is not None:
                instance = create()
                record.object_id = str(instance.pk)
                record.save(update_fields=["object_id"])
                return Response(render(instance), status=record.status_code)
            # A concurrent request with this key committed first: answer as its retry.
            earlier = live_record(client_id, key)
    return _replay(earlier, fingerprint, find, render)


def _replay(record: IdempotencyKey | None, fingerprint: Fingerprint,
            find: Callable[[str], M | None], render: Callable[[M], dict]) -> Response:
    if record is None:  # the concurrent holder's record expired in between: vanishingly rare
        return _problem(status.HTTP_409_CONFLICT, PROBLEM_OBJECT_GONE,
                        "Idempotency-Key no longer usable",
                        f"The request that used this {HEADER} could not be found; "
                        "retry with a new key.")
    if not fingerprint.matches(record):
        return _problem(422, PROBLEM_KEY_REUSED, "Idempotency-Key reused",
                        f"This {HEADER} was already used for a different request "
                        f"({record.method} {record.path} with another body); nothing was "
                        "changed. Use a new key for a new request.")
    instance = find(record.object_id)
    if instance is None:
        return _problem(status.HTTP_409_CONFLICT, PROBLEM_OBJECT_GONE,
                        "Created object deleted",
                        f"The {record.object_type.lower()} {record.object_id} created by the "
                        f"first request with this {HEADER} has since been deleted; nothing "
                        "was created again.")
    response = Response(render(instance), status=record.status_code)
    response[REPLAYED_HEADER] = "true"
    return response


def _problem(status_code: int, problem_type: str, title: str, detail: str) -> Response:
    body = problem_body(status_code, detail) | {"type": problem_type, "title": title}
    return Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
