"""The one internal model behind both OpenADR wire versions.

Field names follow the 3.1 documents. Structures that the VTN never queries into
(interval periods, intervals, payload descriptors, attributes) are kept as JSON
exactly as validated. Targets are stored twice on purpose: as the list the client
sent (so each version can render it back) and as indexed labels (so object privacy
is a database query, not a Python loop).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from vtn.append_only import AppendOnlyModel


def new_object_id() -> str:
    """A URL-safe object id matching the documents' objectID pattern."""
    return uuid.uuid4().hex


class OpenADRObject(models.Model):
    id = models.CharField(primary_key=True, max_length=128, default=new_object_id, editable=False)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    modified = models.DateTimeField(auto_now=True)
    # Targets as sent: a list of {"type": str, "values": [str, ...]}; 3.1 strings use type TARGET.
    targets = models.JSONField(default=list, blank=True)

    class Meta:
        abstract = True
        ordering = ["created", "id"]


class Program(OpenADRObject):
    program_name = models.CharField(max_length=128, unique=True)
    interval_period = models.JSONField(null=True, blank=True)
    program_descriptions = models.JSONField(null=True, blank=True)
    payload_descriptors = models.JSONField(null=True, blank=True)
    # 3.0.1's programLongName, retailerName, ... are kept here as 3.1 program attributes.
    attributes = models.JSONField(null=True, blank=True)

    class Meta(OpenADRObject.Meta):
        pass

    def __str__(self) -> str:
        return self.program_name


class Event(OpenADRObject):
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="events")
    event_name = models.CharField(max_length=256, null=True, blank=True)
    priority = models.PositiveIntegerField(null=True, blank=True)
    duration = models.CharField(max_length=64, null=True, blank=True)
    report_descriptors = models.JSONField(null=True, blank=True)
    payload_descriptors = models.JSONField(null=True, blank=True)
    interval_period = models.JSONField(null=True, blank=True)
    intervals = models.JSONField(default=list)
    # Derived from interval periods on write, for the `active` filter (null: open-ended).
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta(OpenADRObject.Meta):
        indexes = [models.Index(fields=["program", "created"])]

    def __str__(self) -> str:
        return self.event_name or self.id


class Ven(OpenADRObject):
    ven_name = models.CharField(max_length=128, unique=True)
    client_id = models.CharField(max_length=128, db_index=True)
    attributes = models.JSONField(null=True, blank=True)

    class Meta(OpenADRObject.Meta):
        verbose_name = "VEN"

    def __str__(self) -> str:
        return self.ven_name


class Resource(OpenADRObject):
    ven = models.ForeignKey(Ven, on_delete=models.CASCADE, related_name="resources")
    resource_name = models.CharField(max_length=128)
    client_id = models.CharField(max_length=128, db_index=True)
    attributes = models.JSONField(null=True, blank=True)

    class Meta(OpenADRObject.Meta):
        constraints = [
            models.UniqueConstraint(fields=["ven", "resource_name"],
                                    name="unique_resource_name_per_ven")
        ]

    def __str__(self) -> str:
        return self.resource_name


class Report(OpenADRObject):
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="reports")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="reports")
    client_id = models.CharField(max_length=128, db_index=True)
    client_name = models.CharField(max_length=128, db_index=True)
    report_name = models.CharField(max_length=256, null=True, blank=True)
    payload_descriptors = models.JSONField(null=True, blank=True)
    resources = models.JSONField(default=list)

    def __str__(self) -> str:
        return self.report_name or self.id


class Subscription(OpenADRObject):
    client_id = models.CharField(max_length=128, db_index=True)
    client_name = models.CharField(max_length=128)
    program = models.ForeignKey(
        Program, on_delete=models.CASCADE, null=True, blank=True, related_name="subscriptions"
    )
    object_operations = models.JSONField(default=list)
    # The wire version the subscription was last written through: notifications are
    # rendered in it ("3.1.0" or "3.0.1").
    wire_version = models.CharField(max_length=8, default="3.1.0")
    # Webhook delivery state (vtn/webhooks.py): consecutive failed attempts of the oldest
    # pending notification, when the callback was marked broken (no more deliveries until
    # the owner updates the subscription or an operator resets it), the last success.
    delivery_failures = models.PositiveIntegerField(default=0)
    broken_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=512, blank=True)
    # While set in the future, one worker is delivering this subscription's notifications.
    draining_until = models.DateTimeField(null=True, blank=True)
    lease = models.CharField(max_length=32, blank=True)  # who holds draining_until

    def __str__(self) -> str:
        return f"{self.client_name} ({self.id})"


class WebhookDelivery(models.Model):
    """One notification to one callback URL of one subscription (the webhook outbox).

    Rows are written after the change committed and delivered oldest first per
    subscription; ``notification_id`` is sent in a header on every attempt so a
    receiver can drop a duplicate.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        ABANDONED = "abandoned"  # the subscription broke or changed its callbacks

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE,
                                     related_name="deliveries")
    notification_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    callback_url = models.CharField(max_length=8000)
    bearer_token = models.TextField(null=True, blank=True)
    body = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["subscription", "state", "id"]),
                   models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.notification_id} -> {self.callback_url} ({self.state})"


class TargetLabel(models.Model):
    """One indexed target label of a program, event, ven or resource."""

    class Kind(models.TextChoices):
        PROGRAM = "PROGRAM"
        EVENT = "EVENT"
        VEN = "VEN"
        RESOURCE = "RESOURCE"
        SUBSCRIPTION = "SUBSCRIPTION"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    object_id = models.CharField(max_length=128)
    label = models.CharField(max_length=128)

    class Meta:
        indexes = [
            models.Index(fields=["kind", "label"]),
            models.Index(fields=["kind", "object_id"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["kind", "object_id", "label"],
                                    name="unique_target_label")
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.object_id}:{self.label}"


class ObjectOwner(models.Model):
    """One owner of a program, ven or subscription: an opaque code (a network operator's,
    for the GB dispatch profile). Events and reports are owned as their program,
    resources as their ven. Business-logic callers see an object only when they reach
    every one of its owners (see vtn.ownership)."""

    class Kind(models.TextChoices):
        PROGRAM = "PROGRAM"
        VEN = "VEN"
        SUBSCRIPTION = "SUBSCRIPTION"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    object_id = models.CharField(max_length=128)
    owner = models.CharField(max_length=32)

    class Meta:
        indexes = [models.Index(fields=["kind", "object_id"])]
        constraints = [
            models.UniqueConstraint(fields=["kind", "object_id", "owner"],
                                    name="unique_object_owner")
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.object_id}:{self.owner}"


class Client(models.Model):
    """An OAuth2 client of the VTN: its role, scopes and (for a VEN) its binding.

    The OAuth2 ``client_id`` is the OpenADR ``clientID`` written into the objects the
    client creates; a VEN client sees only objects carrying its own ``clientID``.
    """

    class Role(models.TextChoices):
        BL = "bl", "Business logic"
        VEN = "ven", "VEN"
        # An FSP's back office: reads its FSP's sites, dispatches and statements and (with
        # the commercial role) answers statements; no OpenADR scope.
        FSP = "fsp", "FSP back office"

    application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, on_delete=models.CASCADE,
        related_name="vtn_client",
    )
    name = models.CharField(max_length=128, unique=True)
    role = models.CharField(max_length=8, choices=Role.choices)
    scopes = models.CharField(max_length=512)
    revoked = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    # Must present a bound TLS client certificate: tokens are then bound to it (RFC 8705).
    require_mtls = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"

    @property
    def client_id(self) -> str:
        return self.application.client_id

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


class Generation(models.Model):
    """A counter bumped in the same transaction as every write that affects a reader.

    Web processes keep in-memory caches (resolved tokens, rendered poll answers) keyed by
    these counters; reading the counters is one cheap query per request, so every
    process sees a change as soon as the writing transaction commits.
    """

    name = models.CharField(primary_key=True, max_length=32)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"



class IdempotencyKey(models.Model):
    """A client's ``Idempotency-Key`` and what the first request with it created.

    Written in the transaction that created the object, so the two exist together or not
    at all; a retry with the same key and fingerprint replays the object instead of
    creating another (see ``vtn.idempotency``).
    """

    client_id = models.CharField(max_length=128)
    key = models.CharField(max_length=255)
    # The fingerprint of the first request: method, path and SHA-256 of its canonical body.
    method = models.CharField(max_length=8)
    path = models.TextField()
    body_sha256 = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=128, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.UniqueConstraint(fields=["client_id", "key"],
                                    name="unique_idempotency_key_per_client")
        ]

    def __str__(self) -> str:
        return f"{self.client_id} {self.key!r} -> {self.object_type} {self.object_id}"

# --- transport security ------------------------------------------------------------------------


class ClientCertificate(models.Model):
    """A TLS client certificate bound to a client: with ``Client.require_mtls`` the client
    must present one of its bound certificates, and its tokens are bound to that one."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="certificates")
    sha256 = models.CharField(max_length=64, unique=True)  # lower-case hex of the DER
    serial = models.CharField(max_length=64)  # hex
    subject = models.CharField(max_length=512)
    not_after = models.DateTimeField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.subject} ({self.sha256[:16]}...)"


class IssuedCertificate(models.Model):
    """The registry of every certificate the VTN's CA issued; revocation is recorded here."""

    class Kind(models.TextChoices):
        CLIENT = "client"
        SERVER = "server"

    serial = models.CharField(max_length=64, unique=True)  # hex, as `openssl x509 -serial`
    sha256 = models.CharField(max_length=64, unique=True)  # lower-case hex of the DER
    kind = models.CharField(max_length=8, choices=Kind.choices)
    subject = models.CharField(max_length=512)
    fsp = models.CharField(max_length=64, blank=True)
    site = models.CharField(max_length=64, blank=True)
    subject_alt_names = models.JSONField(default=list, blank=True)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    issued_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["issued_at", "serial"]

    def __str__(self) -> str:
        return f"{self.subject} serial {self.serial}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class TokenBinding(models.Model):
    """The certificate an access token is bound to (RFC 8705 ``cnf`` / ``x5t#S256``)."""

    access_token = models.OneToOneField(
        settings.OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL, on_delete=models.CASCADE,
        primary_key=True, related_name="vtn_binding")
    certificate_sha256 = models.CharField(max_length=64, db_index=True)

    def __str__(self) -> str:
        return f"token {self.access_token_id} -> {self.certificate_sha256[:16]}..."


class SecurityEvent(AppendOnlyModel):
    """One line of the append-only security log (see ``manage.py security_log``)."""

    append_only_noun = "security events"

    class Kind(models.TextChoices):
        TOKEN_ISSUED = "token_issued"
        TOKEN_REFUSED = "token_refused"
        AUTH_FAILED = "auth_failed"
        CERT_MISMATCH = "cert_mismatch"
        CERT_REVOKED = "cert_revoked"  # a request presented a revoked certificate
        RATE_LIMITED = "rate_limited"
        CLIENT_CREATED = "client_created"
        CLIENT_ROTATED = "client_rotated"
        CLIENT_REVOKED = "client_revoked"
        CERTIFICATE_ISSUED = "certificate_issued"
        CERTIFICATE_BOUND = "certificate_bound"
        CERTIFICATE_REVOKED = "certificate_revoked"  # an operator revoked a certificate
        WEBHOOK_BROKEN = "webhook_broken"  # a subscription's callback failed every retry
        WEBHOOK_RESET = "webhook_reset"  # an operator reset a broken subscription
        # An operator-side identity named an object of a network operator outside its scope
        # (answered 404, as for an object that does not exist).
        OUT_OF_SCOPE = "out_of_scope"
        SCOPE_CHANGED = "scope_changed"  # an identity's network-operator scope was set

    time = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    client_id = models.CharField(max_length=128, blank=True, db_index=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    cert_sha256 = models.CharField(max_length=64, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["time", "id"]

    def __str__(self) -> str:
        return f"{self.time.isoformat()} {self.kind} {self.client_id}"


class ServingPeriod(models.Model):
    """A span during which the web tier was serving: each web process beats every
    ``VTN_SERVING_BEAT_SECONDS`` (vtn/serving.py), extending the latest span or, after a
    silence, opening a new one. The gaps between spans are the VTN's own outages."""

    started = models.DateTimeField(db_index=True)
    last_beat = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["started"]

    def __str__(self) -> str:
        return f"{self.started:%Y-%m-%d %H:%M:%S} - {self.last_beat:%H:%M:%S}"
