"""Content negotiation for an API that only speaks JSON."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class JSONOnly(DefaultContentNegotiation):
    """Every OpenADR response is JSON: pick the JSON renderer without parsing Accept.

    Parsing Accept on each request was a measurable share of a poll; clients that send
    ``Accept: */*`` or nothing at all (most OpenADR clients) see no difference. Request
    bodies are still matched to a parser by Content-Type as usual.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
