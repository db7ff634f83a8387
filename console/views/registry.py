"""The registry: FSPs, sites, units and contracts; onboarding and contracts (administrator)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from console import filters, selectors, services
from console.forms import (
    ContractForm,
    OnboardForm,
    ProductParametersForm,
    UnitCapabilitiesForm,
)
from console.models import CertificateBundle
from console.permissions import REGISTRY, console_view
from console.views.common import narrow_form, operator_scope, page, paged, staff
from dispatch import onboarding, programs
from dispatch import selectors as dispatch_selectors
from dispatch.api.serializers import SiteSerializer
from vtn.errors import Problem

# Each registry list: its FilterSet, and its own page parameter.
LISTS = {"fsps": filters.FspFilter, "sites": filters.SiteFilter,
         "units": filters.UnitFilter, "contracts": filters.ContractFilter}


@console_view()
def registry(request: HttpRequest) -> HttpResponse:
    """FSPs, sites, units and contracts, each filtered by the one form (operator, FSP,
    comms state) and paged on its own (``fsps_page``, ``sites_page``, ...)."""
    lists = selectors.registry(operator_scope(request))
    context: dict = {"problems": []}
    for name, filter_class in LISTS.items():
        narrowed = filter_class(request.GET, queryset=lists[name])
        valid = narrowed.is_valid()
        if not valid:
            context["problems"] = ["check the filters"]
        context[name] = paged(request, narrowed.qs if valid else [], param=f"{name}_page")
    context["site_rows"] = SiteSerializer(context["sites"], many=True, transitions=0).data
    context["form"] = filters.SiteFilter(request.GET).form
    return page(request, "console/registry.html", context,
                status=400 if context["problems"] else 200)


@console_view(REGISTRY)
@require_http_methods(["GET", "POST"])
def onboard(request: HttpRequest) -> HttpResponse:
    """The onboarding form; its answer shows the client secret this once and links the
    certificate bundle for its one download."""
    form = narrow_form(OnboardForm(request.POST or None), operator_scope(request))
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result, bundle = services.onboard_site(
                operator=data["operator"], fsp=data["fsp"], site=data["site"],
                units=data["units"], zone=data["zone"], fsp_name=data["fsp_name"],
                staff=staff(request))
        except Problem as exc:
            problems = services.violations(exc)
        else:
            return page(request, "console/onboarded.html", {"result": result,
                                                            "bundle": bundle})
    return page(request, "console/onboard.html", {"form": form, "problems": problems},
                status=400 if problems else 200)


@console_view(REGISTRY)
@require_http_methods(["GET", "POST"])
def bundle(request: HttpRequest, bundle_id: str) -> HttpResponse:
    """GET: a page with the download button. POST: the certificate bundle as a zip, once
    (a POST, so that no link prefetcher can take it); afterwards a page saying it is gone."""
    if request.method == "GET":
        found = CertificateBundle.objects.filter(pk=bundle_id).first()
        if found is not None and not operator_scope(request).allows(found.operator):
            operator_scope(request).refuse(f"certificate bundle {bundle_id}", found.operator)
            found = None
        if found is None:
            return page(request, "console/bundle_gone.html",
                        {"reason": "There is no such certificate bundle."}, status=404)
        return page(request, "console/bundle.html", {"bundle": found})
    held = CertificateBundle.objects.filter(pk=bundle_id).values_list("operator",
                                                                        flat=True).first()
    if held is not None and not operator_scope(request).allows(held):
        operator_scope(request).refuse(f"certificate bundle {bundle_id}", held)
        return page(request, "console/bundle_gone.html",
                    {"reason": "There is no such certificate bundle."}, status=404)
    onboarding = request.POST.get("format") == "onboarding"
    try:
        name, content = services.take_bundle(bundle_id=bundle_id, staff=staff(request),
                                             onboarding=onboarding)
    except services.BundleGone as exc:
        return page(request, "console/bundle_gone.html", {"reason": str(exc)}, status=410)
    response = HttpResponse(content, content_type="application/json" if onboarding
                            else "application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@console_view(REGISTRY)
@require_http_methods(["GET", "POST"])
def new_contract(request: HttpRequest) -> HttpResponse:
    form = narrow_form(ContractForm(request.POST or None), operator_scope(request))
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            contract = onboarding.create_contract(
                operator=data["operator"], identifier=data["identifier"], fsp=data["fsp"],
                product=data["product"].code, units=data["units"],
                availability_price=data["availability_price"],
                utilisation_price=data["utilisation_price"],
                baseline_method=data["baseline_method"], capacity_kw=data["capacity_kw"],
                reactive_utilisation_price=data["reactive_utilisation_price"] or Decimal(0),
                emergency_premium_percent=data["emergency_premium_percent"],
                reactive_baseline_method=data["reactive_baseline_method"])
        except Problem as exc:
            problems = services.violations(exc)
        else:
            messages.success(request, f"Contract {contract.operator.code}/"
                                      f"{contract.identifier} recorded.")
            return redirect("/console/registry#contracts")
    return page(request, "console/contract_form.html", {"form": form, "problems": problems},
                status=400 if problems else 200)


@console_view(REGISTRY)
@require_http_methods(["GET", "POST"])
def unit_capabilities(request: HttpRequest, operator: str, fsp: str,
                      unit: str) -> HttpResponse:
    """A unit's real (kW) and reactive (kVAr) capabilities; the change is checked against
    its contracts and recorded in the audit log."""
    try:
        found = dispatch_selectors.find_unit(unit, fsp=fsp, operator=operator,
                                             scope=operator_scope(request))
    except Problem:
        return page(request, "console/not_found.html",
                    {"what": f"dispatch unit {operator}/{fsp}/{unit}"}, status=404)
    form = UnitCapabilitiesForm(request.POST or None, initial={
        "capacity_kw": found.capacity_kw, "capacity_kvar": found.capacity_kvar})
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            changed = onboarding.set_unit_capabilities(
                unit=found, capacity_kw=data["capacity_kw"],
                capacity_kvar=data["capacity_kvar"], changed_by=staff(request),
                reason=data["reason"])
        except Problem as exc:
            problems = services.violations(exc)
        else:
            kvar = changed.capacity_kvar
            messages.success(request, f"Unit {operator}/{fsp}/{unit} now offers "
                                      f"{changed.capacity_kw.normalize():f} kW and "
                                      + (f"{kvar.normalize():f} kVAr." if kvar is not None
                                         else "no reactive power."))
            return redirect("/console/registry#units")
    return page(request, "console/unit_form.html",
                {"form": form, "problems": problems, "unit": found},
                status=400 if problems or (request.method == "POST" and not form.is_valid())
                else 200)


@console_view(REGISTRY)
@require_http_methods(["GET", "POST"])
def product_parameters(request: HttpRequest) -> HttpResponse:
    """Each operator's product parameters (own values and defaults); an administrator sets
    an operator's own values, published at once in its OpenADR program and audited."""
    form = narrow_form(ProductParametersForm(request.POST or None), operator_scope(request))
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            shown = programs.set_product_parameters(
                operator=data["operator"], product=data["product"].code,
                changes=form.changes(), changed_by=staff(request), reason=data["reason"])
        except Problem as exc:
            problems = services.violations(exc)
        else:
            messages.success(request, f"{shown.program_name} now applies " + ", ".join(
                f"{name} {value or 'none'}" for name, value in shown.parameters.items())
                + ".")
            return redirect("/console/registry/products")
    rows = dispatch_selectors.product_parameter_rows(operator_scope(request))
    return page(request, "console/products.html",
                {"form": form, "problems": problems, "rows": rows},
                status=400 if problems else 200)
