"""The console's error pages (400, 403, 404, 500) in the console's style, for errors
Django raises before or outside a console view (an unknown URL, a failed CSRF check, a
server error). A 500 is rendered without the request's context, so a failing database or
session cannot make the error page fail too; the others keep the navigation for a
signed-in user when they can, and fall back to the same plain page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template import loader

from console import permissions

TEXT = {
    400: ("Bad request", "The request could not be understood. Nothing was changed."),
    403: ("Not allowed", "This request is not allowed (an expired form? reload the page "
                         "and try again). Nothing was changed."),
    404: ("Not found", "There is no console page at this address."),
    500: ("Server error", "The server failed to handle the request; it has been logged. "
                          "If you were changing something, check on its page whether it "
                          "was done before trying again."),
}


def error_page(status: int, request: HttpRequest | None = None) -> HttpResponse:
    title, text = TEXT.get(status, TEXT[500])
    context = {"status": status, "heading": title, "text": text}
    template = loader.get_template("console/error.html")
    content = None
    if request is not None and status != 500:
        try:
            if permissions.fully_authenticated(request):
                context["role"] = permissions.role_of(request.user)
            content = template.render(context, request)
        except Exception:  # the plain page below, whatever failed
            content = None
    if content is None:
        content = template.render(context)
    response = HttpResponse(content, status=status)
    response["Cache-Control"] = "no-store"
    return response
