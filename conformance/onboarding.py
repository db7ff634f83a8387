"""Self-service onboarding for the conformance sandbox: an FSP developer registers a
site, gets its credentials, certificate bundle and standing events once, and contracts
for the products the scenarios dispatch (RESTORE for every unit, MW_DISPATCH for export
units: both without notice period).

Enabled only by ``CONFORMANCE_SELF_SERVICE`` (the sandbox sets it): **never on a
production VTN**, since anyone who can reach the endpoint becomes an FSP. Capped at
``CONFORMANCE_MAX_FSPS`` live sandbox FSPs and ``CONFORMANCE_ONBOARD_RATE_PER_HOUR`` per
address. A self-service FSP expires ``CONFORMANCE_FSP_TTL_HOURS`` after onboarding (the
hourly beat task ``conformance.tasks.expire_sandbox_fsps``): its sites' certificates are
revoked (the CRL lists them until they expire), its sites' clients are revoked and then
deleted with their tokens and certificate bindings, and it stops counting towards the
cap. Its registration and dispatch history stay, since revisions and the audit chain are
immutable.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from conformance.models import SandboxFsp
from dispatch import onboarding, products, programs, registry
from dispatch.models import Fsp
from vtn.auth import certificates
from vtn.auth import services as auth_services
from vtn.errors import BadRequest, Conflict, Problem
from vtn.models import Client, ClientCertificate, IssuedCertificate

logger = logging.getLogger(__name__)

SITE = "main"
MAX_UNITS = 10


class TooMany(Problem):
    status_code = 429
    title = "Too Many Requests"


def parse_units(raw: object) -> list[registry.UnitSpec]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("units: give a list of 1 to 10 units")
    if len(raw) > MAX_UNITS:
        raise BadRequest(f"units: at most {MAX_UNITS} in the sandbox")
    units = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"units[{index}] must be an object")
        try:
            reference = registry.check_identifier(str(item.get("reference", "")),
                                                  "unit reference")
            capacity = Decimal(str(item.get("capacityKw")))
        except (registry.RegistryError, InvalidOperation) as exc:
            raise BadRequest(f"units[{index}]: {exc}") from exc
        if not capacity.is_finite() or not 0 < capacity <= 100_000:
            raise BadRequest(f"units[{index}]: capacityKw must be a number in (0, 100000]")
        direction = str(item.get("direction", "import"))
        if direction not in ("import", "export"):
            raise BadRequest(f"units[{index}]: direction is import or export")
        kvar = None
        if item.get("capacityKvar") is not None:
            try:
                kvar = registry.capacity(str(item["capacityKvar"]), "capacityKvar")
            except registry.RegistryError as exc:
                raise BadRequest(f"units[{index}]: {exc}") from exc
            if kvar > 100_000:
                raise BadRequest(f"units[{index}]: capacityKvar must be at most 100000")
        units.append(registry.UnitSpec(reference=reference, capacity_kw=capacity,
                                       direction=direction, capacity_kvar=kvar))
    return units


def _check_limits(remote_addr: str) -> None:
    cap = int(getattr(settings, "CONFORMANCE_MAX_FSPS", 50))
    if SandboxFsp.objects.filter(expired_at__isnull=True).count() >= cap:
        raise TooMany(f"the sandbox holds its maximum of {cap} self-service FSPs")
    per_hour = int(getattr(settings, "CONFORMANCE_ONBOARD_RATE_PER_HOUR", 10))
    recent = SandboxFsp.objects.filter(remote_addr=remote_addr,
                                       created__gte=timezone.now() - timedelta(hours=1))
    if remote_addr and recent.count() >= per_hour:
        raise TooMany(f"at most {per_hour} onboardings per hour from one address")


def sandbox_contracts(*, operator: str, fsp: str, units: list[registry.UnitSpec]) -> list[str]:
    """The sandbox contracts of an FSP: RESTORE over every unit, MW_DISPATCH over the
    export units over 1 MW, and DYNAMIC (a product with a notice period, for the
    notice-period scenario) over every unit. Existing ones are kept."""
    programs.load_products()
    made = []
    plans = [("RESTORE", [u.reference for u in units]),
             ("MW_DISPATCH", [u.reference for u in units if products.unit_problem(
                 "MW_DISPATCH", ("export",), direction=u.direction,
                 capacity_kw=u.capacity_kw) is None]),
             ("DYNAMIC", [u.reference for u in units])]
    for product, references in plans:
        if not references:
            continue
        identifier = f"SBX-{fsp}-{product.replace('_', '')}"[:63]
        try:
            onboarding.create_contract(operator=operator, identifier=identifier, fsp=fsp,
                                       product=product, units=references)
        except Conflict:
            pass
        made.append(identifier)
    return made


@transaction.atomic
def onboard(*, fsp: str, units: object, remote_addr: str = "", pki_dir: Path | None = None
            ) -> dict:
    """Onboard a sandbox FSP with one site (``main``); returns what `fsp onboard` prints
    plus the certificate bundle as PEM strings and the sandbox contracts."""
    operator = settings.CONFORMANCE_OPERATOR
    specs = parse_units(units)
    _check_limits(remote_addr)
    try:
        registry.check_identifier(str(fsp), "FSP identifier")
    except registry.RegistryError as exc:
        raise BadRequest(str(exc)) from exc
    if Fsp.objects.filter(operator__code=operator, identifier=fsp).exists():
        raise Conflict(f"FSP {fsp!r} already exists in the sandbox; choose another name")
    pki_dir = Path(pki_dir or getattr(settings, "VTN_PKI_DIR", "")
                   or Path(settings.VAR_DIR) / "pki")
    out_dir = Path(tempfile.mkdtemp(prefix="conformance-onboard-"))
    try:
        result = onboarding.onboard_fsp(operator=operator, fsp=fsp, units=specs, site=SITE,
                                        fsp_name=fsp, pki_dir=pki_dir, out_dir=out_dir)
        bundle = result.get("certificate") or {}
        pems = {}
        for name, key in (("cert_pem", "cert_path"), ("key_pem", "key_path"),
                          ("ca_pem", "ca_path")):
            if bundle.get(key):
                pems[name] = Path(bundle[key]).read_text()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    contracts = sandbox_contracts(operator=operator, fsp=fsp, units=specs)
    SandboxFsp.objects.create(fsp=Fsp.objects.get(operator__code=operator, identifier=fsp),
                              remote_addr=remote_addr[:64])
    certificate = {k: v for k, v in bundle.items() if k not in ("cert_path", "key_path",
                                                                "ca_path")}
    # The keys `fsp onboard` prints, so `ven-client init --from-onboarding` reads them.
    return {k: v for k, v in result.items() if k != "certificate"} | {
        "contracts": contracts, "certificate": certificate | pems}


def _pki_dir() -> Path:
    return Path(getattr(settings, "VTN_PKI_DIR", "") or Path(settings.VAR_DIR) / "pki")


def expire_sandbox_fsps(now: datetime | None = None) -> list[str]:
    """Expire every self-service FSP onboarded more than ``CONFORMANCE_FSP_TTL_HOURS`` ago:
    revoke its sites' TLS client certificates (the CRL is rewritten), revoke and delete its
    sites' OAuth2 clients (with their tokens and certificate bindings), and mark it
    expired. Returns the FSP identifiers expired."""
    now = now or timezone.now()
    ttl = timedelta(hours=float(getattr(settings, "CONFORMANCE_FSP_TTL_HOURS", 72)))
    expired = []
    due = SandboxFsp.objects.select_related("fsp").filter(expired_at__isnull=True,
                                                          created__lt=now - ttl)
    for enrolment in due:
        with transaction.atomic():
            client_ids = list(enrolment.fsp.sites.values_list("ven__client_id", flat=True))
            clients = Client.objects.select_related("application").filter(
                application__client_id__in=client_ids)
            for client in clients.filter(revoked=False):
                auth_services.revoke_client(client_id=client.client_id)
            serials = ClientCertificate.objects.filter(
                client__in=clients).values_list("serial", flat=True)
            for issued in IssuedCertificate.objects.filter(serial__in=list(serials),
                                                           revoked_at__isnull=True):
                certificates.revoke_certificate(serial=issued.serial, pki_dir=_pki_dir(),
                                                reason="sandbox FSP expired")
            for client in list(clients):
                auth_services.delete_client(client_id=client.client_id,
                                            reason="sandbox FSP expired")
            enrolment.expired_at = now
            enrolment.save(update_fields=["expired_at"])
        logger.info("expired sandbox FSP %s", enrolment.fsp.identifier)
        expired.append(enrolment.fsp.identifier)
    return expired
