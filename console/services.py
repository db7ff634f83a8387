"""Console writes composed from the dispatch services: onboarding with a one-time
certificate bundle, and dispatches checked against the product's rules before they are
issued. The rules themselves, signing and publishing stay in ``dispatch``."""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import shutil
import zipfile
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from console.models import CertificateBundle
from console.permissions import ROLES
from dispatch import issuing, onboarding, programs, registry, rules
from dispatch.models import DispatchInstruction, DispatchRevision, DispatchUnit, Product
from dispatch.scope import Scope
from vtn import ownership, webhooks
from vtn.errors import Problem


def pki_dir() -> Path:
    """The operator's PKI directory, as ``pki`` and ``fsp onboard --dir`` use it."""
    return Path(getattr(settings, "VTN_PKI_DIR", Path(settings.VAR_DIR) / "pki"))


def bundles_dir() -> Path:
    """Where onboarding leaves certificate bundles until their one download."""
    return Path(settings.VAR_DIR) / "console" / "bundles"


# --- onboarding -------------------------------------------------------------------------------

# The onboarding file ``ven-client init --from-onboarding`` reads (ven_client/onboarding.py).
ONBOARDING_FORMAT = "gb-flex-vtn-onboarding/1"
ONBOARDING_FILE = "onboarding.json"
OPENADR_VERSION = "3.1.0"


def onboarding_document(result: dict, *, vtn_url: str) -> dict:
    """Everything an FSP's agent needs, in one file: the VTN's URL, client id and secret,
    VEN name, units and the certificate bundle (certificate, private key, CA) inline as
    PEM, read from the files onboarding wrote."""
    certificate = result.get("certificate") or {}
    pem = {key: Path(certificate[path]).read_text() for key, path in (
        ("cert_pem", "cert_path"), ("key_pem", "key_path"), ("ca_pem", "ca_path"))
        if certificate.get(path)}
    return {"format": ONBOARDING_FORMAT, "vtn_url": vtn_url,
            "openadr_version": OPENADR_VERSION, "operator": result["operator"],
            "fsp": result["fsp"], "site": result["site"], "ven_name": result["ven_name"],
            "client_id": result["client_id"], "client_secret": result["client_secret"],
            "units": [unit["reference"] for unit in result.get("units", [])],
            "certificate": pem | {key: certificate[key] for key in
                                  ("serial", "sha256", "not_after") if key in certificate}}


def onboard_site(*, operator: str, fsp: str, site: str, units: list[registry.UnitSpec],
                 zone: str = "", fsp_name: str = "", staff: str) -> tuple[dict, CertificateBundle]:
    """Onboard an FSP site as ``fsp onboard --dir`` does, its certificate bundle and the
    onboarding file (:func:`onboarding_document`, mode 0600: it holds the client secret
    and the private key) written to a directory of its own for one download. Returns the
    onboarding result (the client secret appears only here and in that file) and the
    bundle record. Raises the service's problems."""
    bundle = CertificateBundle(operator=operator.upper(), fsp=fsp, site=site, created_by=staff)
    out = bundles_dir() / str(bundle.id)
    bundle.directory = str(out)
    try:
        with transaction.atomic():
            result = onboarding.onboard_fsp(
                operator=operator, fsp=fsp, site=site, units=units, zone=zone,
                fsp_name=fsp_name, pki_dir=pki_dir(), out_dir=out)
            bundle.operator = result["operator"]
            bundle.save()
            document = onboarding_document(result, vtn_url=settings.VTN_PUBLIC_URL)
            fd = os.open(out / ONBOARDING_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(document, handle, indent=2)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return result, bundle


class BundleGone(Exception):
    """The bundle was downloaded already (or its files are missing)."""


def take_bundle(*, bundle_id: str, staff: str, onboarding: bool = False) -> tuple[str, bytes]:
    """The bundle as a zip (file name, bytes), or with ``onboarding`` only its onboarding
    file (which holds the certificate bundle too), once: the files are deleted and the
    bundle marked taken in the same step, so a second request raises
    :class:`BundleGone`."""
    with transaction.atomic():
        bundle = CertificateBundle.objects.select_for_update().filter(pk=bundle_id).first()
        if bundle is None:
            raise BundleGone("there is no such certificate bundle")
        if bundle.downloaded_at is not None:
            raise BundleGone(f"the certificate bundle of {bundle.operator}/{bundle.fsp}/"
                             f"{bundle.site} was downloaded by {bundle.downloaded_by} at "
                             f"{rules.iso(bundle.downloaded_at)}; it is no longer on the "
                             "server")
        directory = Path(bundle.directory)
        files = sorted(p for p in directory.glob("*") if p.is_file()) \
            if directory.is_dir() else []
        if not files:
            raise BundleGone("the certificate bundle's files are gone")
        if onboarding:
            found = [path for path in files if path.name == ONBOARDING_FILE]
            if not found:
                raise BundleGone("this certificate bundle has no onboarding file")
            content = found[0].read_bytes()
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in files:
                    archive.writestr(path.name, path.read_bytes())
            content = buffer.getvalue()
        bundle.downloaded_at, bundle.downloaded_by = timezone.now(), staff
        bundle.save(update_fields=["downloaded_at", "downloaded_by"])
        # Gone before the answer leaves: a failure after this loses the bundle (re-issue
        # the certificate) rather than leaving a private key behind.
        shutil.rmtree(directory, ignore_errors=True)
    stem = f"{bundle.operator.lower()}-{bundle.fsp}-{bundle.site}"
    if onboarding:
        return f"{stem}-onboarding.json", content
    return f"{stem}-certificate.zip", content


# --- dispatches -------------------------------------------------------------------------------

def violations(problem: Problem) -> list[str]:
    """Every message of a service's problem: the rule violations, else its detail."""
    return list(problem.errors) or [str(problem.detail)]


# What the console records with a write but the check step does not need.
_WRITE_ONLY = ("issued_by", "reason", "confirm_comms_loss")


def _check_arguments(arguments: dict) -> dict:
    return {name: value for name, value in arguments.items() if name not in _WRITE_ONLY}


def preview_issue(**arguments) -> tuple[list[str], dict | None]:
    """What ``dispatch.issuing.issue_dispatch(**arguments)`` would do now, from its check
    step (nothing is written): the rule violations, or none and the Appendix A document
    revision 1 would carry (every value resolved by the check: the product's default
    urgency, the setpoints, the times), for the confirmation page."""
    try:
        checked = issuing.check_issue(**_check_arguments(arguments))
    except Problem as exc:
        return violations(exc), None
    if checked.violations:
        return list(checked.violations), None
    lost = issuing.sites_in_comms_loss(arguments["unit"])
    if lost and not arguments.get("confirm_comms_loss"):
        return [f"site {site} is in comms loss: tick the confirmation to issue the dispatch "
                "anyway" for site in lost], None
    return [], checked.draft.document()


def issue_arguments(*, unit: DispatchUnit, product: Product, start: datetime, end: datetime,
                    kw: Decimal, setpoint_type: str, status: str, urgency: str,
                    reference: str, staff: str, reason: str = "",
                    confirm_comms_loss: bool = False, service_type: str = "real",
                    price: Decimal | None = None) -> dict:
    """The ``issue_dispatch`` arguments of a console form: one setpoint of ``kw`` (kVAr
    for reactive power) held from the service start to its end, at the instructed
    ``price`` (GBP per kWh or kVArh) when one is given."""
    return {"unit": unit, "product": product, "service_start": start, "service_end": end,
            "timings": [rules.Timing(setpoint_time=start, volume=kw,
                                     setpoint_type=setpoint_type, service_type=service_type,
                                     price_gbp_per_kwh=price)],
            "status": status, "urgency": urgency or None, "reference": reference,
            "issued_by": f"console:{staff}", "reason": reason,
            "confirm_comms_loss": confirm_comms_loss}


def earliest_change(dispatch: DispatchInstruction, now: datetime | None = None) -> datetime:
    """The first whole minute from which a revision may change setpoints: after the
    product's notice period, and not before the service start."""
    now = now or timezone.now()
    notice = programs.required_parameter(programs.product_parameters(
        dispatch.operator, dispatch.contract.product), "notice_period")
    after = now + notice + timedelta(minutes=1)
    return max(after.replace(second=0, microsecond=0), dispatch.service_start)


def revised_timings(revision: DispatchRevision, *, kw: Decimal,
                    effective: datetime) -> list[rules.Timing]:
    """The setpoints of ``revision`` up to ``effective``, then ``kw`` from ``effective`` on
    (same setpoint and service type as the last setpoint before it)."""
    previous = issuing.draft_of(revision).timings
    kept = [t for t in previous if t.setpoint_time < effective]
    template = kept[-1] if kept else previous[0]
    return [*kept, rules.Timing(setpoint_time=effective, volume=kw,
                                setpoint_type=template.setpoint_type,
                                service_type=template.service_type,
                                price_gbp_per_kwh=template.price_gbp_per_kwh)]


def revise_arguments(*, dispatch: DispatchInstruction, revision: DispatchRevision,
                     kw: Decimal | None, effective: datetime | None, end: datetime | None,
                     status: str | None, staff: str, reason: str = "") -> dict:
    arguments = {"dispatch": dispatch, "expected_revision": revision.number,
                 "issued_by": f"console:{staff}", "reason": reason}
    if kw is not None:
        arguments["timings"] = revised_timings(
            revision, kw=kw, effective=effective or earliest_change(dispatch))
    if end is not None:
        arguments["service_end"] = end
    if status:
        arguments["status"] = status
    return arguments


def check_revision(**arguments) -> list[str]:
    """The rule violations ``dispatch.issuing.revise_dispatch(**arguments)`` would meet
    now, from its check step (nothing is written); none: it would succeed."""
    try:
        checked = issuing.check_revision(**_check_arguments(arguments))
    except Problem as exc:
        return violations(exc)
    return list(checked.violations)


@transaction.atomic
def issue_sandbox_staff(*, username: str, role: str) -> dict:
    """A console user for the sandbox: created on first use with a TOTP device; later
    calls set a fresh password (only its hash is stored) and keep the TOTP device, so an
    authenticator enrolled once keeps working. Returns what a person needs to log in."""
    users = get_user_model().objects
    user = users.filter(username=username).first()
    password = secrets.token_urlsafe(18)
    if user is None:
        user = users.create_user(username=username, password=password)
    else:
        user.set_password(password)
        user.is_active = True
        user.save(update_fields=["password", "is_active"])
    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="console", confirmed=True)
    return {"url": "/console/", "username": username, "role": role, "password": password,
            "otpauth_uri": device.config_url,
            "totp_secret": base64.b32encode(device.bin_key).decode().rstrip("=")}


def reset_subscription(*, scope: Scope, subscription_id: str, staff: str) -> bool:
    """Reset a broken webhook subscription within the staff member's operators; False when
    there is none to reset. One of another operator is answered the same and the reach
    is written to the security log."""
    if webhooks.reset(subscription_id, operator=staff, owners=scope.operators):
        return True
    foreign = ownership.owners_of("subscription", subscription_id) - scope.operators
    if foreign:
        scope.refuse(f"subscription {subscription_id}", ", ".join(sorted(foreign)))
    return False
