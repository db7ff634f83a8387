"""Conformance runs, the faults the sandbox injects, and the FSPs onboarded by self-service.

A run's report is stored as the JSON document described in docs/conformance.md; its
status moves ``pending`` -> ``running`` -> ``passed`` / ``failed`` (every check graded) or
``error`` (the run itself could not be completed).
"""

from __future__ import annotations

import uuid

from django.db import models


class ConformanceRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        PASSED = "passed"
        FAILED = "failed"
        ERROR = "error"

    # A random id: the HTML report URL is shared without a login (docs/conformance.md).
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    site = models.ForeignKey("dispatch.FspSite", on_delete=models.PROTECT,
                             related_name="conformance_runs")
    scenarios = models.JSONField(default=list)  # scenario names, in order
    options = models.JSONField(default=dict)  # poll interval, margin, deadlines, ...
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    requested_by = models.CharField(max_length=128, blank=True)  # client id, or "cli"
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    current_scenario = models.CharField(max_length=32, blank=True)
    # What the FSP must do now (e.g. send meter readings), while a scenario waits for it.
    awaiting = models.JSONField(null=True, blank=True)
    report = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"conformance run {self.pk} ({self.status})"

    @property
    def done(self) -> bool:
        return self.status in (self.Status.PASSED, self.Status.FAILED, self.Status.ERROR)


class InjectedFault(models.Model):
    """While ``starts_at <= now < ends_at`` the VTN answers the client's requests (all of
    them, or only its writes) with 503 and ``Retry-After`` (conformance.middleware)."""

    class Scope(models.TextChoices):
        ALL = "all"  # the VTN is unreachable for the client
        WRITES = "writes"  # POST/PUT/PATCH/DELETE fail; polls still work

    client_id = models.CharField(max_length=128, db_index=True)
    run = models.ForeignKey(ConformanceRun, on_delete=models.CASCADE, null=True, blank=True,
                            related_name="faults")
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.ALL)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(db_index=True)
    retry_after_s = models.PositiveIntegerField(default=5)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "id"]

    def __str__(self) -> str:
        return f"fault {self.scope} for {self.client_id} until {self.ends_at:%H:%M:%S}"


class FaultHit(models.Model):
    """One request the fault answered with 503: the evidence of how the client backs off."""

    fault = models.ForeignKey(InjectedFault, on_delete=models.CASCADE, related_name="hits")
    at = models.DateTimeField()
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.method} {self.path} at {self.at:%H:%M:%S.%f}"


class SandboxFsp(models.Model):
    """An FSP that onboarded itself through the self-service endpoint (for the cap and the
    per-address rate limit)."""

    fsp = models.OneToOneField("dispatch.Fsp", on_delete=models.CASCADE,
                               related_name="sandbox_enrolment")
    remote_addr = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # Set by onboarding.expire_sandbox_fsps once CONFORMANCE_FSP_TTL_HOURS have passed: the
    # clients and certificates are revoked; the FSP no longer counts towards the cap.
    expired_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"sandbox {self.fsp}"


class TopicDiscovery(models.Model):
    """The last time a dispatch site's VEN client asked for one kind of its MQTT topics
    (``vtn.signals.topics_discovered``): the ``mqtt`` scenario's discovery evidence."""

    client_id = models.CharField(max_length=128)
    ven_id = models.CharField(max_length=128)
    object_type = models.CharField(max_length=16, blank=True)  # EVENT, PROGRAM, ...; "" the ven
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client_id", "ven_id", "object_type"],
                                               name="one_discovery_per_topic_kind")]

    def __str__(self) -> str:
        return f"{self.client_id} discovered {self.object_type or 'VEN'} topics at {self.at}"
