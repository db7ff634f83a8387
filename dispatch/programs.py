"""Network operators, the five products and each operator's OpenADR program per product,
with the timing parameters an operator may set for its own products."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction

from dispatch import mapping, publishing, registry
from dispatch.models import NetworkOperator, OperatorProgram, Product, ProductParameterChange
from dispatch.products import PRODUCT_TEMPLATES, normalise_code
from vtn import timing
from vtn.errors import BadRequest


def ensure_operator(code: str) -> NetworkOperator:
    """The operator with ``code`` (from the well-known list), created on first use."""
    try:
        code = registry.check_operator_code(code)
    except registry.RegistryError as exc:
        raise BadRequest(str(exc)) from exc
    operator, _ = NetworkOperator.objects.get_or_create(
        code=code, defaults={"name": registry.NETWORK_OPERATORS[code]})
    return operator


def load_products() -> list[Product]:
    """Create the five products from their templates; existing rows are left as they are
    (an operator may have tuned them). Safe to run any number of times."""
    result = []
    for item in PRODUCT_TEMPLATES:
        product, _ = Product.objects.get_or_create(code=item.code, defaults={
            "name": item.name, "summary": item.summary, "notice_period": item.notice_period,
            "ramp_time": item.ramp_time, "quantity": item.quantity,
            "setpoint_types": list(item.setpoint_types), "directions": list(item.directions),
            "heartbeat_interval": item.heartbeat_interval,
            "availability_paid": item.availability_paid,
            "default_urgency": item.default_urgency})
        result.append(product)
    return result


def find_product(code: str) -> Product:
    product = Product.objects.filter(code=normalise_code(code)).first()
    if product is None:
        known = ", ".join(Product.objects.values_list("code", flat=True))
        raise BadRequest(f"unknown product {code!r}; use one of {known}")
    return product


# The timing parameters an operator may set per product: (name, least, most, may be none).
PRODUCT_PARAMETERS = {
    "notice_period": (timedelta(0), timedelta(days=30), False),
    "ramp_time": (timedelta(0), timedelta(days=1), False),
    "heartbeat_interval": (timedelta(seconds=10), timedelta(days=1), True),
}


def product_parameters(operator: NetworkOperator, product: Product) -> dict[str, timedelta | None]:
    """The timing parameters that apply to ``operator``'s ``product``: the operator's own
    values where it set them, else the product's defaults."""
    values = {name: getattr(product, name) for name in PRODUCT_PARAMETERS}
    program = OperatorProgram.objects.filter(operator=operator, product=product).first()
    for name, text in (program.parameters if program else {}).items():
        values[name] = None if text is None else timing.parse_duration(text)
    return values


def required_parameter(values: dict[str, timedelta | None], name: str) -> timedelta:
    """A parameter of :func:`product_parameters` that always has a value (the notice
    period and the ramp time; only the heartbeat interval may be none)."""
    value = values[name]
    if value is None:
        raise ValueError(f"{name} has no value")
    return value


def _program_body(operator: NetworkOperator, product: Product,
                  values: dict[str, timedelta | None]) -> dict:
    return mapping.program_body(
        operator=operator.code, product_code=product.code,
        notice_period=required_parameter(values, "notice_period"),
        ramp_time=required_parameter(values, "ramp_time"),
        quantity=product.quantity, setpoint_types=list(product.setpoint_types),
        heartbeat_interval=values["heartbeat_interval"],
        availability_paid=product.availability_paid)


@transaction.atomic
def ensure_program(operator: NetworkOperator, product: Product) -> OperatorProgram:
    """The OpenADR program of ``operator``'s ``product``, created from the template once."""
    existing = OperatorProgram.objects.filter(operator=operator, product=product).first()
    if existing is not None:
        return existing
    body = _program_body(operator, product, product_parameters(operator, product))
    program = publishing.save_program(body, operator=operator.code)
    return OperatorProgram.objects.create(operator=operator, product=product, program=program)


def _durations(values: dict[str, timedelta | None]) -> dict[str, str | None]:
    return {name: None if value is None else mapping.duration(value)
            for name, value in values.items()}


@dataclass(frozen=True)
class ProductParameterSettings:
    """What an operator's product applies (ISO 8601 durations, None: no heartbeat), the
    product's defaults, and which parameters the operator set itself. Rendered by
    ``dispatch.api.serializers.ProductParametersSerializer``."""

    operator: str
    product: str
    program_name: str
    parameters: dict[str, str | None]
    defaults: dict[str, str | None]
    operator_set: list[str]


def product_parameter_settings(operator: NetworkOperator,
                               product: Product) -> ProductParameterSettings:
    """What an operator's product applies, and which values are still the defaults."""
    program = OperatorProgram.objects.filter(operator=operator, product=product).first()
    own = program.parameters if program else {}
    return ProductParameterSettings(
        operator=operator.code, product=product.code,
        program_name=mapping.program_name(operator.code, product.code),
        parameters=_durations(product_parameters(operator, product)),
        defaults=_durations({name: getattr(product, name) for name in PRODUCT_PARAMETERS}),
        operator_set=sorted(own))


def _checked_parameters(changes: dict) -> dict[str, str | None]:
    """``changes`` (name -> ISO 8601 duration, "NONE"/None for no heartbeat, or "DEFAULT"
    to go back to the product's default) as stored text; every problem at once."""
    if not isinstance(changes, dict) or not changes:
        raise BadRequest("give at least one parameter to set: "
                         + ", ".join(PRODUCT_PARAMETERS))
    errors: list[str] = []
    checked: dict[str, str | None] = {}
    for name, value in changes.items():
        if name not in PRODUCT_PARAMETERS:
            errors.append(f"{name}: unknown parameter; use one of "
                          + ", ".join(PRODUCT_PARAMETERS))
            continue
        least, most, may_be_none = PRODUCT_PARAMETERS[name]
        if isinstance(value, str) and value.upper() == "DEFAULT":
            checked[name] = "DEFAULT"
            continue
        if value is None or (isinstance(value, str) and value.upper() == "NONE"):
            if may_be_none:
                checked[name] = None
            else:
                errors.append(f"{name}: a duration is required")
            continue
        try:
            parsed = timing.parse_duration(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.total_seconds() != int(parsed.total_seconds()):
            errors.append(f"{name}: {value!r} is not an ISO 8601 duration in whole seconds "
                          "(e.g. PT15M, P1D)")
        elif not least <= parsed <= most:
            errors.append(f"{name}: must be between {mapping.duration(least)} and "
                          f"{mapping.duration(most)}")
        else:
            checked[name] = mapping.duration(parsed)
    if errors:
        raise BadRequest("The product parameters are not valid.", errors=errors)
    return checked


@transaction.atomic
def set_product_parameters(*, operator: str, product: str, changes: dict, changed_by: str,
                           reason: str = "") -> ProductParameterSettings:
    """Set ``operator``'s own values of ``product``'s timing parameters, record the change
    (audit) and publish it at once as an update of the operator's OpenADR program, so
    agents read the new attributes (heartbeat interval included) at their next poll."""
    op, found = ensure_operator(operator), find_product(product)
    checked = _checked_parameters(changes)
    program = ensure_program(op, found)
    program = OperatorProgram.objects.select_for_update().get(pk=program.pk)
    before = _durations(product_parameters(op, found))
    stored = dict(program.parameters)
    for name, value in checked.items():
        if value == "DEFAULT":
            stored.pop(name, None)
        else:
            stored[name] = value
    program.parameters = stored
    program.save(update_fields=["parameters"])
    values = product_parameters(op, found)
    publishing.save_program(_program_body(op, found, values), operator=op.code,
                            program=program.program)
    ProductParameterChange.objects.create(
        operator=op, product=found, changed_by=changed_by or "unknown", before=before,
        after=_durations(values), reason=reason)
    return product_parameter_settings(op, found)
