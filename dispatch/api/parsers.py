"""The bulk meter-readings body parser: a body of plain rows is decoded in one pass of a
compiled decoder straight into typed rows (``dispatch.readings.decode_bulk_body``), a
large request's main cost otherwise; any other body is read by the strict parser of
every API, so its limits and messages are unchanged (and the rows' checks explain what
is wrong with a row)."""

from __future__ import annotations

from rest_framework.exceptions import ParseError

from dispatch import readings
from vtn.api.parsers import StrictJSONParser, loads_strict


class BulkReadingsParser(StrictJSONParser):
    """:class:`StrictJSONParser` answering a :class:`readings.BulkBody` when the body is
    plain, and parsed JSON otherwise."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        body = readings.decode_bulk_body(raw)
        if body is not None:
            return body
        try:
            return loads_strict(raw)
        except ValueError as exc:
            raise ParseError(str(exc)) from exc
