"""What the console keeps of its own: certificate bundles waiting for their one download."""

from __future__ import annotations

import uuid

from django.db import models


class CertificateBundle(models.Model):
    """A site's TLS client certificate bundle (cert, key, CA) written by onboarding into a
    directory of its own. It may be downloaded once: the download deletes the files and
    records who took it, so a second request finds nothing to give."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    operator = models.CharField(max_length=16)
    fsp = models.CharField(max_length=63)
    site = models.CharField(max_length=63)
    directory = models.CharField(max_length=1024)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150)
    downloaded_at = models.DateTimeField(null=True, blank=True)
    downloaded_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"certificate bundle of {self.operator}/{self.fsp}/{self.site}"


class LoginThrottle(models.Model):
    """Failed logins counted against one key of ``console.login_throttle``: an account
    (``account:<username>``), an address (``address:<ip>``) or the two together
    (``pair:<username>|<ip>``). Rows live in the database so every web process sees the
    same counts whether or not the cache is up."""

    key = models.CharField(max_length=400, unique=True)
    failures = models.PositiveIntegerField(default=0)
    last_failure = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key}: {self.failures} failures"
