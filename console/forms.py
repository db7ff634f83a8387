"""Console forms: they parse and label input; every rule beyond the field format is the
services' (their violations are shown next to the form)."""

from __future__ import annotations

from datetime import UTC

from django import forms

from dispatch import registry, rules
from dispatch.models import DispatchUnit, Product
from settlement.models import Statement

UTC_HELP = "UTC, 24-hour clock, as YYYY-MM-DD HH:MM (e.g. 2026-11-29 17:30)"
DATETIME_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S",
                    "%Y-%m-%dT%H:%M"]


class UtcDateTimeInput(forms.DateTimeInput):
    """A plain text input for a UTC date and time in 24-hour form. Not ``datetime-local``:
    browsers show and parse that in the user's locale (12-hour clocks, local day order),
    which would contradict the help text and the UTC the console works in."""

    input_type = "text"

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs={
            "pattern": r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?",
            "placeholder": "YYYY-MM-DD HH:MM", "size": "16",
            "autocomplete": "off", "spellcheck": "false", **(attrs or {})},
            format="%Y-%m-%d %H:%M")


class UtcDateTimeField(forms.DateTimeField):
    """A date and time typed in UTC, 24-hour (the console shows every time in UTC); the
    label says UTC."""

    widget = UtcDateTimeInput

    def __init__(self, **kwargs):
        kwargs.setdefault("input_formats", DATETIME_FORMATS)
        kwargs.setdefault("help_text", UTC_HELP)
        super().__init__(**kwargs)
        if self.label and "UTC" not in self.label:
            self.label = f"{self.label} (UTC)"

    def to_python(self, value):
        result = super().to_python(value)
        if result is not None:
            result = result.replace(tzinfo=UTC) if result.tzinfo is None \
                else result.astimezone(UTC)
        return result


class LoginForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(
        attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(widget=forms.PasswordInput(
        attrs={"autocomplete": "current-password"}))
    otp_token = forms.CharField(
        label="Authenticator code", max_length=8, min_length=6,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "pattern": "[0-9]*"}),
        help_text="The 6-digit code your authenticator app shows now.")


class OnboardForm(forms.Form):
    operator = forms.ChoiceField(choices=[(c, f"{c} ({n})") for c, n in
                                          registry.NETWORK_OPERATORS.items()])
    fsp = forms.CharField(label="FSP identifier", max_length=63)
    fsp_name = forms.CharField(label="FSP name", max_length=128, required=False)
    site = forms.CharField(max_length=63, initial="main")
    units = forms.CharField(
        label="Dispatch units", widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line: reference:kW[:import|export][:kVAr], e.g. bat1:500:export "
                  "or, for a unit that also offers reactive power, bat1:500:export:300")
    zone = forms.CharField(label="Location or congestion zone", max_length=128,
                           required=False)

    def clean_units(self) -> list[registry.UnitSpec]:
        lines = [line.strip() for line in self.cleaned_data["units"].splitlines()
                 if line.strip()]
        if not lines:
            raise forms.ValidationError("give at least one dispatch unit")
        specs, errors = [], []
        for line in lines:
            try:
                specs.append(registry.parse_unit_spec(line))
            except registry.RegistryError as exc:
                errors.append(str(exc))
        if errors:
            raise forms.ValidationError(errors)
        return specs


class ContractForm(forms.Form):
    operator = forms.ChoiceField(choices=[(c, c) for c in registry.NETWORK_OPERATORS])
    identifier = forms.CharField(label="Contract id", max_length=63)
    fsp = forms.CharField(label="FSP identifier", max_length=63)
    product = forms.ModelChoiceField(queryset=Product.objects.order_by("code"),
                                     to_field_name="code")
    units = forms.CharField(label="Unit references", help_text="Separated by commas")
    availability_price = forms.DecimalField(label="Availability price (GBP per MW per hour)",
                                            initial=0, min_value=0)
    utilisation_price = forms.DecimalField(label="Utilisation price (GBP per MWh)",
                                           initial=0, min_value=0)
    baseline_method = forms.CharField(label="Baseline method", required=False,
                                      help_text="e.g. high-3-of-5, meter-before-4, nominated")
    capacity_kw = forms.DecimalField(label="Contracted capacity (kW)", required=False,
                                     help_text="Empty: the sum of the units' capacities")
    reactive_utilisation_price = forms.DecimalField(
        label="Reactive utilisation price (GBP per MVArh)", initial=0, min_value=0,
        required=False, help_text="Empty: 0")
    emergency_premium_percent = forms.DecimalField(
        label="Emergency premium (%)", required=False, min_value=0, max_value=1000,
        help_text="Uplift on the utilisation payment of emergency periods; empty: none")
    reactive_baseline_method = forms.CharField(
        label="Reactive baseline method", required=False, max_length=64,
        help_text="What delta reactive setpoints are measured from: meter-before-N, "
                  "high-X-of-Y or average-Y; empty: meter-before-4")

    def clean_units(self) -> list[str]:
        return [u.strip() for u in self.cleaned_data["units"].split(",") if u.strip()]


class UnitCapabilitiesForm(forms.Form):
    """What a dispatch unit can deliver: real power (kW) and reactive power (kVAr)."""

    capacity_kw = forms.DecimalField(label="Real power capacity (kW)", min_value=0,
                                     max_digits=12, decimal_places=3)
    capacity_kvar = forms.DecimalField(
        label="Reactive power capacity (kVAr)", required=False, min_value=0, max_digits=12,
        decimal_places=3, help_text="Empty: the unit offers no reactive power")
    reason = forms.CharField(label="Reason", required=False, max_length=1000)


class ProductParametersForm(forms.Form):
    """An operator's own values of a product's timing parameters (ISO 8601 durations)."""

    HELP = "ISO 8601 duration, e.g. PT15M; empty: unchanged; DEFAULT: the product's default"

    operator = forms.ChoiceField(choices=[(c, c) for c in registry.NETWORK_OPERATORS])
    product = forms.ModelChoiceField(queryset=Product.objects.order_by("code"),
                                     to_field_name="code")
    notice_period = forms.CharField(label="Notice period", required=False, max_length=32,
                                    help_text=HELP)
    ramp_time = forms.CharField(label="Ramp time", required=False, max_length=32,
                                help_text=HELP)
    heartbeat_interval = forms.CharField(label="Heartbeat interval", required=False,
                                         max_length=32, help_text=HELP + "; NONE: none")
    reason = forms.CharField(label="Reason", required=False, max_length=1000)

    def changes(self) -> dict[str, str]:
        return {name: self.cleaned_data[name].strip() for name in
                ("notice_period", "ramp_time", "heartbeat_interval")
                if self.cleaned_data[name].strip()}


class DispatchForm(forms.Form):
    unit = forms.ModelChoiceField(
        label="Dispatch unit",
        queryset=DispatchUnit.objects.select_related("fsp__operator").order_by(
            "fsp__operator__code", "fsp__identifier", "reference"))
    product = forms.ModelChoiceField(queryset=Product.objects.order_by("code"),
                                     to_field_name="code")
    start = UtcDateTimeField(label="Service start")
    end = UtcDateTimeField(label="Service end")
    kw = forms.DecimalField(label="Volume", min_value=0, max_digits=12,
                            decimal_places=3, help_text="kW, or kVAr for reactive power")
    service_type = forms.ChoiceField(label="Power", initial="real", required=False, choices=[
        ("real", "real (kW)"), ("reactive", "reactive (kVAr)")])
    price = forms.DecimalField(
        label="Price per unit (GBP)", required=False, min_value=0, max_digits=12,
        decimal_places=5, help_text="Per kWh (per kVArh for reactive power); paid as "
                                    "instructed. Empty: the contract's utilisation price")
    setpoint_type = forms.ChoiceField(label="Setpoint", choices=[
        ("delta", "delta (flexibility against the baseline)"),
        ("absolute", "absolute (power at the connection point)")])
    status = forms.ChoiceField(choices=[("run", "run"), ("pre-notify", "pre-notify")])
    urgency = forms.ChoiceField(required=False, choices=[("", "the product's default")] + [
        (u, u) for u in rules.URGENCIES],
        help_text="The confirmation page shows the urgency the product resolves to.")
    reference = forms.CharField(label="Dispatch reference", required=False, max_length=63,
                                help_text="Empty: one is generated")
    reason = forms.CharField(required=False, max_length=500)
    confirm_comms_loss = forms.BooleanField(
        required=False, label="Issue even though the unit's site is in comms loss")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].label_from_instance = lambda unit: (
            f"{unit.fsp.operator.code}/{unit.fsp.identifier}/{unit.reference} "
            f"({unit.direction}, {unit.capacity_kw.normalize():f} kW"
            + (f", {unit.capacity_kvar.normalize():f} kVAr" if unit.capacity_kvar else "")
            + ")")


class ReviseForm(forms.Form):
    kw = forms.DecimalField(label="New volume (kW)", min_value=0, max_digits=12,
                            decimal_places=3, required=False)
    effective = UtcDateTimeField(label="New volume from", required=False,
                                 help_text=f"{UTC_HELP}; empty: the earliest time allowed")
    end = UtcDateTimeField(label="New service end", required=False)
    status = forms.ChoiceField(required=False, choices=[("", "unchanged"), ("run", "run"),
                                                        ("pre-notify", "pre-notify")])
    reason = forms.CharField(required=False, max_length=500)

    def clean(self):
        data = super().clean()
        if data.get("kw") is None and data.get("end") is None and not data.get("status"):
            raise forms.ValidationError("change the volume, the end or the status")
        return data


class StopForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


class ComputeForm(forms.Form):
    contract = forms.CharField(label="Contract id", max_length=63)
    operator = forms.ChoiceField(required=False, choices=[("", "any")] + [
        (c, c) for c in registry.NETWORK_OPERATORS])
    month = forms.RegexField(regex=r"^\d{4}-\d{2}$", help_text="YYYY-MM",
                             widget=forms.TextInput(attrs={"placeholder": "YYYY-MM"}))


class ResolveForm(forms.Form):
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class StatementFilterForm(forms.Form):
    month = forms.RegexField(regex=r"^\d{4}-\d{2}$", required=False, help_text="YYYY-MM")
    fsp = forms.CharField(label="FSP", required=False)
    status = forms.ChoiceField(required=False, choices=[("", "any")] + [
        (s, s) for s in Statement.Status.values])
