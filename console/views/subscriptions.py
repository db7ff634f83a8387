"""Webhook subscriptions: who subscribed, where notifications go, how delivery goes; an
administrator resets a broken one (vtn.webhooks.reset). Only the subscriptions within the
user's network operators are shown or reset (their owners, see vtn.ownership)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from console import services
from console.permissions import REGISTRY, console_view
from console.views.common import operator_scope, page, staff
from vtn import selectors

PER_PAGE = 50


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        return parts.netloc.rsplit("@", 1)[-1] or url
    except ValueError:
        return url


def _row(subscription, names: dict[str, str]) -> dict:
    operations = subscription.object_operations
    return {
        "id": subscription.id,
        "owner": names.get(subscription.client_id, subscription.client_id),
        "client_name": subscription.client_name,
        "hosts": sorted({_host(entry["callbackUrl"]) for entry in operations}),
        "objects": sorted({o for entry in operations for o in entry.get("objects", [])}),
        "operations": sorted({o for entry in operations for o in entry.get("operations", [])}),
        "version": subscription.wire_version,
        "last_delivery_at": subscription.last_delivery_at,
        "failures": subscription.delivery_failures,
        "pending": subscription.pending,
        "broken_at": subscription.broken_at,
        "last_error": subscription.last_error,
    }


@console_view()
def subscription_list(request: HttpRequest) -> HttpResponse:
    broken_only = request.GET.get("broken") == "1"
    paginator = Paginator(selectors.subscription_deliveries(
        broken_only=broken_only, owners=operator_scope(request).operators), PER_PAGE)
    current = paginator.get_page(request.GET.get("page"))
    names = selectors.client_names({s.client_id for s in current})
    return page(request, "console/subscriptions.html", {
        "rows": [_row(s, names) for s in current], "page_obj": current,
        "broken_only": broken_only, "reset": request.GET.get("reset", "")})


@console_view(REGISTRY)
@require_POST
def reset_subscription(request: HttpRequest, subscription_id: str) -> HttpResponse:
    done = services.reset_subscription(scope=operator_scope(request),
                                       subscription_id=subscription_id, staff=staff(request))
    return redirect(f"/console/subscriptions?reset={'done' if done else 'none'}")
