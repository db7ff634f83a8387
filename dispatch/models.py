"""The GB dispatch registry, dispatch instructions with immutable revisions, signing keys.

Writes go through the dispatch write modules (``programs``, ``onboarding``,
``issuing``, ...); OpenADR objects (vens, resources, programs,
events) are only ever written through ``vtn.services``. Acknowledgements attach to
:class:`DispatchRevision`; revisions and acknowledgements are chained in :class:`AuditEntry`.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from dispatch import rules
from dispatch.registry import NETWORK_OPERATORS
from vtn.append_only import AppendOnlyModel


class NetworkOperator(models.Model):
    code = models.CharField(max_length=16, unique=True,
                            choices=[(code, code) for code in NETWORK_OPERATORS])
    name = models.CharField(max_length=128)
    created = models.DateTimeField(auto_now_add=True)
    # Whether availability and meter-reading reports of a site with a registered signing
    # key must be signed (docs/gb-dispatch-profile.md section 12). On by default; an
    # operator turns it off for a transition period (``dispatch signed-reports``).
    require_signed_reports = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class OperatorGrant(models.Model):
    """One network operator an operator-side identity may see and act for: an API client
    (business logic) or a console user. An identity with no grant sees nothing; a shared
    service company has one grant per operator it works for (see dispatch.scope)."""

    client = models.ForeignKey("vtn.Client", on_delete=models.CASCADE, null=True, blank=True,
                               related_name="operator_grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True,
                             blank=True, related_name="operator_grants")
    operator = models.CharField(max_length=16,
                                choices=[(code, code) for code in NETWORK_OPERATORS])
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["operator", "id"]
        constraints = [
            models.UniqueConstraint(fields=["client", "operator"], name="one_grant_per_client"),
            models.UniqueConstraint(fields=["user", "operator"], name="one_grant_per_user"),
            models.CheckConstraint(
                condition=models.Q(client__isnull=False, user__isnull=True) |
                models.Q(client__isnull=True, user__isnull=False),
                name="grant_names_client_or_user"),
        ]

    def __str__(self) -> str:
        return f"{self.client or self.user} -> {self.operator}"


class Product(models.Model):
    """One of the five products: a program template whose parameters drive every rule."""

    class Quantity(models.TextChoices):
        FIXED = "fixed"
        VARIABLE = "variable"

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    summary = models.TextField(blank=True)
    notice_period = models.DurationField()
    ramp_time = models.DurationField()
    quantity = models.CharField(max_length=8, choices=Quantity.choices)
    setpoint_types = models.JSONField()  # ["delta"], ["absolute"], or both; first is default
    directions = models.JSONField()  # unit directions it applies to
    heartbeat_interval = models.DurationField(null=True, blank=True)
    availability_paid = models.BooleanField()
    default_urgency = models.CharField(max_length=16)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class OperatorProgram(models.Model):
    """The OpenADR program of one operator's product (created from the product template)."""

    operator = models.ForeignKey(NetworkOperator, on_delete=models.PROTECT)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    program = models.OneToOneField("vtn.Program", on_delete=models.PROTECT,
                                   related_name="gb_product")
    # The operator's own values of the product's timing parameters: ISO 8601 durations by
    # name (notice_period, ramp_time, heartbeat_interval; heartbeat_interval may be null
    # for "none"). A name not present takes the product's default.
    parameters = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["operator", "product"],
                                               name="one_program_per_operator_product")]

    def __str__(self) -> str:
        return f"{self.operator} {self.product}"


class ProductParameterChange(AppendOnlyModel):
    """Audit entry of one change of an operator's product parameters (append-only)."""

    append_only_noun = "product parameter changes"

    operator = models.ForeignKey(NetworkOperator, on_delete=models.PROTECT)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    time = models.DateTimeField(auto_now_add=True)
    changed_by = models.CharField(max_length=128)  # client id, console user, or "cli"
    before = models.JSONField()  # the effective parameters before and after (ISO durations)
    after = models.JSONField()
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["time", "id"]

    def __str__(self) -> str:
        return f"{self.operator} {self.product} parameters by {self.changed_by}"


class Fsp(models.Model):
    """A flexibility service provider, identified by the id its operator assigned."""

    operator = models.ForeignKey(NetworkOperator, on_delete=models.PROTECT, related_name="fsps")
    identifier = models.CharField(max_length=63)
    name = models.CharField(max_length=128, blank=True)
    # The FSP's own reference, the same on its registrations with every operator, so its
    # staff see them together (empty: this registration stands alone).
    reference = models.CharField(max_length=63, blank=True, db_index=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "FSP"
        constraints = [models.UniqueConstraint(fields=["operator", "identifier"],
                                               name="unique_fsp_per_operator")]

    def __str__(self) -> str:
        return f"{self.operator}/{self.identifier}"


class CommsState(models.TextChoices):
    """Communications state of a site and its units (see dispatch.comms)."""

    UNKNOWN = "unknown"  # never seen
    ONLINE = "online"
    COMMS_LOST = "comms_lost"


class FspSite(models.Model):
    """One site of an FSP: one VEN and one OAuth2 client (and certificate)."""

    fsp = models.ForeignKey(Fsp, on_delete=models.PROTECT, related_name="sites")
    name = models.CharField(max_length=63)
    ven = models.OneToOneField("vtn.Ven", on_delete=models.PROTECT, related_name="gb_site")
    created = models.DateTimeField(auto_now_add=True)
    # Written by dispatch.comms: at most once per DISPATCH_LAST_SEEN_RESOLUTION_SECONDS.
    last_seen = models.DateTimeField(null=True, blank=True)
    comms_state = models.CharField(max_length=16, choices=CommsState.choices,
                                   default=CommsState.UNKNOWN, db_index=True)
    comms_changed = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["fsp", "name"],
                                               name="unique_site_per_fsp")]

    def __str__(self) -> str:
        return f"{self.fsp}/{self.name}"

    @property
    def path(self) -> str:
        """``OPERATOR/FSP/SITE``: how the APIs name a site."""
        return f"{self.fsp.operator.code}/{self.fsp.identifier}/{self.name}"


class DispatchUnit(models.Model):
    class Direction(models.TextChoices):
        IMPORT = "import"
        EXPORT = "export"

    fsp = models.ForeignKey(Fsp, on_delete=models.PROTECT, related_name="units")
    site = models.ForeignKey(FspSite, on_delete=models.PROTECT, related_name="units")
    reference = models.CharField(max_length=63)
    capacity_kw = models.DecimalField(max_digits=12, decimal_places=3)
    # Reactive power the unit can deliver (kVAr); null: it offers none, and every reactive
    # dispatch to it is refused. Set at onboarding or by onboarding.set_unit_capabilities.
    capacity_kvar = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    zone = models.CharField(max_length=128, blank=True,
                            help_text="location or congestion zone")
    resource = models.OneToOneField("vtn.Resource", on_delete=models.PROTECT,
                                    related_name="gb_unit")
    created = models.DateTimeField(auto_now_add=True)
    # The site's comms state, and what the latest heartbeat said of this unit.
    comms_state = models.CharField(max_length=16, choices=CommsState.choices,
                                   default=CommsState.UNKNOWN)
    operating_state = models.CharField(max_length=32, blank=True)
    available_kw = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    state_reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["fsp", "reference"],
                                               name="unique_unit_per_fsp")]

    def __str__(self) -> str:
        return f"{self.fsp}/{self.reference}"


def validate_baseline_method(value: str) -> None:
    """A contract's baseline method of real power (admin and model forms)."""
    problem = rules.baseline_problem(value)
    if problem:
        raise ValidationError(problem)


def validate_reactive_baseline_method(value: str) -> None:
    """A contract's reactive baseline method (admin and model forms)."""
    problem = rules.baseline_problem(value, reactive=True)
    if problem:
        raise ValidationError(problem)


class Contract(models.Model):
    operator = models.ForeignKey(NetworkOperator, on_delete=models.PROTECT,
                                 related_name="contracts")
    identifier = models.CharField(max_length=63)
    fsp = models.ForeignKey(Fsp, on_delete=models.PROTECT, related_name="contracts")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="contracts")
    units = models.ManyToManyField(DispatchUnit, related_name="contracts")
    # [{"start": ISO 8601 UTC, "end": ISO 8601 UTC}, ...]; empty: dispatchable any time.
    service_windows = models.JSONField(default=list, blank=True)
    currency = models.CharField(max_length=3, default="GBP")
    availability_price = models.DecimalField(max_digits=12, decimal_places=4, default=0,
                                             help_text="GBP per MW per hour available")
    utilisation_price = models.DecimalField(max_digits=12, decimal_places=4, default=0,
                                            help_text="GBP per MWh delivered")
    reactive_utilisation_price = models.DecimalField(
        max_digits=12, decimal_places=4, default=0,
        help_text="GBP per MVArh of reactive power delivered")
    emergency_premium_percent = models.DecimalField(
        max_digits=7, decimal_places=3, null=True, blank=True,
        help_text="uplift on the utilisation payment of periods instructed with urgency "
                  "emergency, in percent; null: none")
    capacity_kw = models.DecimalField(
        max_digits=12, decimal_places=3, null=True, blank=True,
        help_text="contracted capacity across the units; null: the sum of their capacities")
    baseline_method = models.CharField(
        max_length=64, blank=True, validators=[validate_baseline_method],
        help_text="baseline of real power: high-X-of-Y, average-Y, meter-before-N or "
                  "nominated (empty: high-3-of-5)")
    reactive_baseline_method = models.CharField(
        max_length=64, blank=True, validators=[validate_reactive_baseline_method],
        help_text="baseline of delta reactive (kVAr) setpoints: meter-before-N, high-X-of-Y "
                  "or average-Y; empty: meter-before-4")

    class CommsLoss(models.TextChoices):
        UNAVAILABLE = "unavailable"  # no availability payment while the site is comms lost
        AS_DECLARED = "as_declared"  # paid as declared, comms lost or not

    comms_loss_availability = models.CharField(
        max_length=16, choices=CommsLoss.choices, default=CommsLoss.UNAVAILABLE,
        help_text="how periods in which a unit's site is comms lost count for availability")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["operator", "identifier"],
                                               name="unique_contract_per_operator")]

    def __str__(self) -> str:
        return f"{self.operator}/{self.identifier}"


class SigningKey(models.Model):
    """An operator's Ed25519 key for signing dispatch revisions (never a TLS key).

    The private key is kept server-side only, PKCS#8 encrypted with
    ``DISPATCH_SIGNING_KEY_PASSPHRASE``; the public JWK is published while
    ``verify_until`` has not passed (null: still the active key).
    """

    operator = models.ForeignKey(NetworkOperator, on_delete=models.PROTECT,
                                 related_name="signing_keys")
    kid = models.CharField(max_length=128, unique=True)
    private_key_pem = models.TextField(editable=False)
    public_jwk = models.JSONField()
    created = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    verify_until = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return self.kid


class DispatchInstruction(models.Model):
    """One dispatch (NO dispatch reference) and the state of its latest revision."""

    operator = models.ForeignKey(NetworkOperator, on_delete=models.PROTECT,
                                 related_name="dispatches")
    reference = models.CharField(max_length=63)
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="dispatches")
    unit = models.ForeignKey(DispatchUnit, on_delete=models.PROTECT, related_name="dispatches")
    event = models.OneToOneField("vtn.Event", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="gb_dispatch")
    revision = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, db_index=True)
    urgency = models.CharField(max_length=16)
    service_start = models.DateTimeField(db_index=True)
    service_end = models.DateTimeField(db_index=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [models.UniqueConstraint(fields=["operator", "reference"],
                                               name="unique_dispatch_ref_per_operator")]

    def __str__(self) -> str:
        return f"{self.operator}/{self.reference} r{self.revision}"


class DispatchRevision(AppendOnlyModel):
    """One immutable revision: the signed Appendix A document exactly as published."""

    append_only_noun = "dispatch revisions"

    instruction = models.ForeignKey(DispatchInstruction, on_delete=models.PROTECT,
                                    related_name="revisions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16)
    urgency = models.CharField(max_length=16)
    instruction_time = models.DateTimeField()
    service_start = models.DateTimeField()
    service_end = models.DateTimeField()
    document = models.JSONField()  # the signed Appendix A document
    signature = models.TextField()  # compact JWS whose payload is canonical(document)
    signing_key = models.ForeignKey(SigningKey, on_delete=models.PROTECT,
                                    related_name="revisions")
    issued_by = models.CharField(max_length=128, blank=True)  # client id, or "cli"
    reason = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["instruction", "number"]
        constraints = [models.UniqueConstraint(fields=["instruction", "number"],
                                               name="unique_revision_number")]

    def __str__(self) -> str:
        return f"{self.instruction} revision {self.number}"


class SiteSigningKey(models.Model):
    """An FSP site's Ed25519 public key for signing acknowledgements (registered by the
    site's VEN). Keys are looked up by ``kid`` within the site; a revoked key no longer
    verifies acknowledgements received after ``revoked_at``."""

    site = models.ForeignKey(FspSite, on_delete=models.PROTECT, related_name="signing_keys")
    kid = models.CharField(max_length=128)
    public_jwk = models.JSONField()
    created = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [models.UniqueConstraint(fields=["site", "kid"],
                                               name="unique_site_key_kid")]

    def __str__(self) -> str:
        return f"{self.site} {self.kid}"


class Acknowledgement(models.Model):
    """One acknowledgement read from a VEN's report, with the outcome of checking it.

    ``revision`` is the revision the acknowledgement names (or, when it names none that
    exists, the dispatch's current revision; ``claimed_revision`` keeps what it said).
    """

    class Stage(models.TextChoices):
        RECEIVED = "received"
        ACTIONED = "actioned"
        REFUSED = "refused"  # the agent will not act on the revision it received

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted"
        READ_BACK_MISMATCH = "read_back_mismatch"
        INVALID_SIGNATURE = "invalid_signature"
        UNKNOWN_KEY = "unknown_key"
        STALE_REVISION = "stale_revision"
        DUPLICATE = "duplicate"

    revision = models.ForeignKey(DispatchRevision, on_delete=models.PROTECT,
                                 related_name="acknowledgements")
    claimed_revision = models.IntegerField(null=True, blank=True)
    stage = models.CharField(max_length=16, choices=Stage.choices, blank=True)
    result = models.CharField(max_length=16, blank=True,
                              help_text="actioned only: ACCEPTED or FAILED")
    reason = models.TextField(blank=True, help_text="why the asset failed (actioned FAILED) "
                              "or why the agent refused the revision")
    outcome = models.CharField(max_length=24, choices=Outcome.choices, db_index=True)
    detail = models.TextField(blank=True, help_text="why the outcome is not accepted")
    received_at = models.DateTimeField()
    report_id = models.CharField(max_length=128, db_index=True)
    client_id = models.CharField(max_length=128)
    kid = models.CharField(max_length=128, blank=True)
    jws = models.TextField(blank=True)
    read_back = models.JSONField(default=dict, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True,
                                     help_text="when the FSP signed it (its signedAt)")

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.revision} {self.stage} {self.outcome}"


class AuditEntry(AppendOnlyModel):
    """One link of the append-only, hash-chained audit log (see gbflex_profile.audit_chain)."""

    append_only_noun = "audit entries"

    class Kind(models.TextChoices):
        REVISION_ISSUED = "revision_issued"
        ACK_RECORDED = "ack_recorded"
        COMMS_CHANGED = "comms_changed"  # a site was marked comms lost or back online
        # A dispatch was issued to a unit whose site was comms lost, confirmed by its issuer.
        COMMS_LOSS_CONFIRMED = "comms_loss_confirmed"
        # An availability or meter-reading report taken in (its intake), with the site's
        # signature of what it declared or read when it signed.
        DECLARATIONS_RECORDED = "declarations_recorded"
        READINGS_RECORDED = "readings_recorded"
        # An operator's rule on unsigned reports changed (require_signed_reports).
        SIGNED_REPORTS_CHANGED = "signed_reports_changed"
        # A unit's capabilities (kW, kVAr) were changed after onboarding.
        UNIT_CAPABILITY_CHANGED = "unit_capability_changed"

    sequence = models.PositiveBigIntegerField(unique=True)
    time = models.DateTimeField()
    kind = models.CharField(max_length=24, choices=Kind.choices)
    operator_code = models.CharField(max_length=16)
    dispatch_ref = models.CharField(max_length=63)
    subject = models.JSONField()  # ids of what the entry is about
    jws = models.TextField(blank=True)  # the signed statement (operator's or FSP's)
    payload = models.JSONField()  # the canonical payload the entry records
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["operator_code", "dispatch_ref"])]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.kind} {self.operator_code}/{self.dispatch_ref}"


class HeartbeatRecord(models.Model):
    """One heartbeat report of a site's VEN; ``units`` maps unit reference to what the
    report said of it: ``{"operatingState": ..., "availableKw": ...}`` (either may be
    absent)."""

    site = models.ForeignKey(FspSite, on_delete=models.CASCADE, related_name="heartbeats")
    received_at = models.DateTimeField(db_index=True)
    report_id = models.CharField(max_length=128, db_index=True)
    client_id = models.CharField(max_length=128)
    units = models.JSONField(default=dict, blank=True)
    # The agent's local log of an outage it rode out (payload GB_OFFLINE_LOG), sent with
    # its first heartbeat-event report once the VTN was reachable again; null otherwise.
    offline_log = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.site} heartbeat {self.received_at:%Y-%m-%dT%H:%M:%SZ}"


class CommsTransition(models.Model):
    """One change of a site's comms state (its units change with it)."""

    site = models.ForeignKey(FspSite, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=16, choices=CommsState.choices)
    to_state = models.CharField(max_length=16, choices=CommsState.choices)
    at = models.DateTimeField(db_index=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    detail = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.site} {self.from_state} -> {self.to_state}"


class ReportIntake(models.Model):
    """What the VTN made of one availability or meter-reading report of a site's VEN, or
    of one site's rows of a bulk meter-data request of its FSP's back office
    (``channel``; ``report_id`` is then empty and ``client_id`` the back office's): how
    many of its values were stored, duplicates, corrections and rejections, and why
    each rejected one was (``problems``: ``[{"unit", "type", "start", "outcome",
    "detail"}]``). A report re-sent with ``PUT`` is examined again as a new intake."""

    class Kind(models.TextChoices):
        AVAILABILITY = "availability"
        METERING = "metering"

    class Channel(models.TextChoices):
        REPORT = "report"  # an OpenADR report of the site's VEN
        BULK = "bulk"  # the dispatch API's bulk meter-readings, from the FSP's back office

    site = models.ForeignKey(FspSite, on_delete=models.CASCADE, related_name="intakes")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.REPORT)
    report_id = models.CharField(max_length=128, db_index=True)
    client_id = models.CharField(max_length=128)
    received_at = models.DateTimeField(db_index=True)
    stored = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    corrections = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True)
    # The site's signature of the report (gbflex_profile.report_signing): the compact JWS,
    # its key, the statement it verified to and when the site signed. Empty when unsigned.
    jws = models.TextField(blank=True)
    kid = models.CharField(max_length=128, blank=True)
    signed = models.JSONField(null=True, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.site} {self.kind} report {self.report_id}"


class MeterReading(models.Model):
    """One interval reading of a unit, as posted in a meter-reading report.

    ``value`` is kWh for USAGE (energy in the interval), kVArh for GB_REACTIVE (reactive
    energy in the interval) and kW for DEMAND and BASELINE; positive is import from the
    network (reactive: absorbed), negative export (reactive: supplied). Null when the FSP
    flagged the reading MISSING. Rows are never changed but for ``superseded_*``: a
    correction adds version n+1 and marks version n superseded; the current reading of
    (unit, type, start) is the one not superseded.
    """

    class Type(models.TextChoices):
        USAGE = "USAGE"
        DEMAND = "DEMAND"
        BASELINE = "BASELINE"
        GB_REACTIVE = "GB_REACTIVE"  # kVArh over the interval, + absorbed, - supplied

    class Quality(models.TextChoices):
        OK = "OK"
        MISSING = "MISSING"
        ESTIMATED = "ESTIMATED"
        BAD = "BAD"

    # No index of its own: the unique (unit, reading_type, start, version) index leads
    # with the unit and serves every lookup by unit; one index fewer to write per reading.
    unit = models.ForeignKey(DispatchUnit, on_delete=models.PROTECT, related_name="readings",
                             db_index=False)
    reading_type = models.CharField(max_length=16, choices=Type.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()
    value = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    quality = models.CharField(max_length=16, choices=Quality.choices, default=Quality.OK)
    version = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField()
    intake = models.ForeignKey(ReportIntake, on_delete=models.PROTECT, related_name="readings")
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.OneToOneField("self", on_delete=models.PROTECT, null=True,
                                         blank=True, related_name="supersedes")

    class Meta:
        ordering = ["unit", "reading_type", "start", "version"]
        constraints = [
            models.UniqueConstraint(fields=["unit", "reading_type", "start", "version"],
                                    name="unique_reading_version"),
            models.UniqueConstraint(fields=["unit", "reading_type", "start"],
                                    condition=models.Q(superseded_at__isnull=True),
                                    name="one_current_reading"),
        ]
        # one_current_reading's unique index is the index of the current readings.

    def __str__(self) -> str:
        return f"{self.unit} {self.reading_type} {self.start:%Y-%m-%dT%H:%MZ} v{self.version}"


class ReadingDay(models.Model):
    """The current readings of one unit and type starting on one UTC day, packed into one
    value for reading in bulk (a month of a unit's half-hourly readings is some thirty
    rows instead of 1,440). On PostgreSQL a trigger on :class:`MeterReading` keeps it:
    every statement that adds, supersedes or deletes readings packs the days it touched
    again, in the same transaction, so it is never behind; elsewhere (SQLite) it stays
    empty and readings are read row by row.

    ``readings``: per reading in order of start, four big-endian signed 64-bit integers:
    start and end in microseconds since 2000-01-01 UTC (PostgreSQL's binary timestamp),
    version, and value in millionths (the column's six decimals), or the smallest int64
    for a reading flagged missing. Nothing writes it but that trigger
    (``dispatch/migrations/0021_reading_days.py``), and the SQL function
    ``dispatch_pack_all_reading_days()``, which packs every day again (readings loaded in
    bulk with the table's triggers off need it)."""

    unit = models.ForeignKey(DispatchUnit, on_delete=models.CASCADE, related_name="+",
                             db_index=False)
    reading_type = models.CharField(max_length=16, choices=MeterReading.Type.choices)
    day = models.DateField(help_text="UTC day the readings start on")
    readings = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["unit", "reading_type", "day"],
                                               name="one_reading_day")]

    def __str__(self) -> str:
        return f"{self.unit} {self.reading_type} {self.day}"


class AvailabilityDeclaration(models.Model):
    """What an FSP declared a unit can deliver (kW, in the direction its contracts order)
    over [start, end). A declaration of the same window again supersedes the earlier one
    (which is kept); over windows that only overlap, the later declaration wins."""

    unit = models.ForeignKey(DispatchUnit, on_delete=models.PROTECT,
                             related_name="declarations")
    start = models.DateTimeField()
    end = models.DateTimeField()
    available_kw = models.DecimalField(max_digits=12, decimal_places=3)
    declared_at = models.DateTimeField(db_index=True)
    intake = models.ForeignKey(ReportIntake, on_delete=models.PROTECT,
                               related_name="declarations")
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.OneToOneField("self", on_delete=models.PROTECT, null=True,
                                         blank=True, related_name="supersedes")

    class Meta:
        ordering = ["unit", "start", "declared_at", "id"]
        constraints = [models.UniqueConstraint(
            fields=["unit", "start", "end"], condition=models.Q(superseded_at__isnull=True),
            name="one_current_declaration")]
        indexes = [models.Index(fields=["unit", "start", "end"])]

    def __str__(self) -> str:
        return f"{self.unit} {self.available_kw} kW from {self.start:%Y-%m-%dT%H:%MZ}"


class OperatorAlertHook(models.Model):
    """Where an operator's own systems take its alerts (an HTTPS webhook)."""

    operator = models.OneToOneField(NetworkOperator, on_delete=models.CASCADE,
                                    related_name="alert_hook")
    url = models.CharField(max_length=2000)
    bearer_token = models.CharField(max_length=512, blank=True)
    enabled = models.BooleanField(default=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.operator} alerts to {self.url}"


class OperatorAlert(models.Model):
    """One alert for an operator (shown in the console) and its delivery to the operator's
    webhook, if it configured one (see dispatch.alerts)."""

    class Kind(models.TextChoices):
        COMMS_LOST = "comms_lost"
        COMMS_RESTORED = "comms_restored"
        DISPATCH_IN_COMMS_LOSS = "dispatch_in_comms_loss"

    class Delivery(models.TextChoices):
        NO_WEBHOOK = "no_webhook"  # shown in the console only
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # every retry failed

    operator = models.ForeignKey(NetworkOperator, on_delete=models.PROTECT,
                                 related_name="alerts")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    site = models.ForeignKey(FspSite, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="alerts")
    raised_at = models.DateTimeField(db_index=True)
    body = models.JSONField()
    notification_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    delivery = models.CharField(max_length=16, choices=Delivery.choices, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]

    def __str__(self) -> str:
        return f"{self.operator} {self.kind} {self.raised_at:%Y-%m-%dT%H:%M:%SZ}"


class FspStaffGrant(models.Model):
    """An FSP back-office identity: an API client (role ``fsp``) or a user, for one FSP
    registration (one operator). It reaches that registration and every other one with the
    same FSP reference. ``commercial`` may also accept or dispute statements; ``metering``
may post meter readings of the FSP's units in bulk."""

    class Role(models.TextChoices):
        READ_ONLY = "read_only"
        COMMERCIAL = "commercial"
        METERING = "metering"  # posts the FSP's meter data in bulk

    client = models.OneToOneField("vtn.Client", on_delete=models.CASCADE, null=True,
                                  blank=True, related_name="fsp_grant")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True,
                                blank=True, related_name="fsp_grant")
    fsp = models.ForeignKey(Fsp, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(max_length=16, choices=Role.choices)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(
            condition=models.Q(client__isnull=False, user__isnull=True) |
            models.Q(client__isnull=True, user__isnull=False),
            name="fsp_grant_names_client_or_user")]

    def __str__(self) -> str:
        return f"{self.client or self.user} -> {self.fsp} ({self.role})"
