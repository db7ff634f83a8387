"""The sandbox's demo FSP fleet: a few sites onboarded under the sandbox operator, each
with a real ``ven_client`` agent started as a child process, so dispatches issued in the
console are polled, verified, handled and acknowledged from the first minute.

``manage.py sandbox`` calls :func:`prepare` (onboarding is idempotent: a second run
rotates the sites' secrets and reuses their signing keys), then :func:`enable_sandbox`
and serves inside :meth:`Fleet.running`, which starts the agents and stops them (SIGTERM)
when the server stops. The agents' configuration, state and logs are under
``$VTN_VAR_DIR/fleet/<site>/``; their handler accepts every instruction.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from conformance.models import ConformanceRun
from dispatch import onboarding, products, programs, registry, site_keys
from dispatch.models import Contract, FspSite, SiteSigningKey
from gbflex_profile import jose
from vtn.auth.services import rotate_secret

logger = logging.getLogger(__name__)

FLEET_FSP = "demo-fleet"
# site -> units (reference, capacity kW, direction)
FLEET_SITES = {
    "north": (("bat1", 1500, "export"), ("hp1", 200, "import")),
    "south": (("ev1", 300, "import"),),
    "west": (("pv1", 400, "export"),),
}
# Units that also offer reactive power (kVAr): the battery's and the PV's inverters.
FLEET_KVAR = {"bat1": Decimal(750), "pv1": Decimal(200)}
PRODUCTS = ("RESTORE", "DYNAMIC", "MW_DISPATCH")  # MW_DISPATCH: export units over 1 MW
# The fleet's contract prices (GBP per MW per hour available, per MWh delivered), so the
# demo statements (conformance/history.py) carry money.
AVAILABILITY_PRICE, UTILISATION_PRICE = Decimal("5.50"), Decimal("300")
POLL_INTERVAL_S = 5.0
FAULTS_MIDDLEWARE = "conformance.middleware.FaultInjectionMiddleware"
# The demo sites' local control: accept every instruction (the agent logs it).
HANDLER = "import sys, json; json.load(sys.stdin); print(json.dumps({'outcome': 'ACCEPTED'}))"


@dataclass
class FleetSite:
    name: str
    directory: Path
    ven_name: str
    client_id: str
    units: list[str]

    @property
    def config_path(self) -> Path:
        return self.directory / "config.toml"

    @property
    def log_path(self) -> Path:
        return self.directory / "agent.log"


@dataclass
class Fleet:
    operator: str
    sites: list[FleetSite]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def summary(self) -> dict:
        return {"operator": self.operator, "fsp": FLEET_FSP, "sites": [
            {"site": s.name, "ven_name": s.ven_name, "client_id": s.client_id,
             "units": s.units, "agent_log": str(s.log_path)} for s in self.sites]}

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "VEN_CLIENT_CONFIG"}
        env["PYTHONUNBUFFERED"] = "1"
        for site in self.sites:
            with site.log_path.open("ab") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "ven_client", "--config", str(site.config_path),
                     "run"], cwd=settings.BASE_DIR, env=env, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent))

    def stop(self, timeout: float = 15) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    @contextlib.contextmanager
    def running(self) -> Iterator[Fleet]:
        """The agents run while the block runs (they retry until the server answers), and
        a :class:`MeteringResponder` answers conformance runs that ask for readings."""
        self.start()
        responder = MeteringResponder(self)
        responder.start()
        try:
            yield self
        finally:
            responder.stop()
            self.stop()


class MeteringResponder:
    """The fleet's metering and planning systems: when a conformance run against a fleet
    site asks for meter readings or availability declarations (its ``awaiting``), drop them
    as a CSV in that site's agent drop folder, as an FSP's own systems would (the agent
    signs them). Values are fixed per unit (readings: a quarter of its capacity over each
    half hour, export negative; availability: half its capacity), so a repeat is a
    duplicate."""

    def __init__(self, fleet: Fleet, every_s: float = 2.0) -> None:
        self.sites = {site.client_id: site for site in fleet.sites}
        self.every_s = every_s
        self.answered: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fleet-metering", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.every_s):
                try:
                    self.answer_pending()
                except Exception:  # the database may be busy; try again next time
                    logger.exception("fleet metering responder")
        finally:
            connection.close()

    def answer_pending(self) -> list[Path]:
        """Answer every running conformance run of a fleet site that awaits readings or
        availability declarations."""
        written = []
        runs = ConformanceRun.objects.filter(
            status=ConformanceRun.Status.RUNNING, awaiting__isnull=False,
            site__ven__client_id__in=list(self.sites)).select_related("site__ven")
        for run in runs:
            awaiting = run.awaiting or {}
            key = f"{run.pk}/{awaiting.get('deadline')}"
            scenario = awaiting.get("scenario")
            if key in self.answered or scenario not in ("metering", "availability"):
                continue
            site = self.sites[run.site.ven.client_id]
            capacity = {ref: (kw, direction) for ref, kw, direction in FLEET_SITES[site.name]}
            if scenario == "metering":
                rows = ["unit,start,duration,type,value"]
                for unit in awaiting.get("units", []):
                    kw, direction = capacity.get(unit, (0, "import"))
                    kwh = kw / 4 * 0.5 * (-1 if direction == "export" else 1)
                    rows += [f"{unit},{period['start'][:19]}Z,PT30M,USAGE,{kwh:g}"
                             for period in awaiting.get("periods", [])]
                name = f"readings-{run.pk}.csv"
            else:  # half of each unit's capacity, declared for every window asked for
                rows = ["unit,start,end,available_kw"]
                for unit in awaiting.get("units", []):
                    kw, _direction = capacity.get(unit, (0, "import"))
                    rows += [f"{unit},{window['start'][:19]}Z,{window['end'][:19]}Z,{kw / 2:g}"
                             for window in awaiting.get("windows", [])]
                name = f"availability-{run.pk}.csv"
            drop = site.directory / "drop"
            drop.mkdir(parents=True, exist_ok=True)
            staging = site.directory / name
            staging.write_text("\n".join(rows) + "\n")
            target = drop / staging.name
            staging.replace(target)  # whole file at once: the agent never reads half of it
            self.answered.add(key)
            written.append(target)
            logger.info("fleet site %s: %s for conformance run %s dropped", site.name,
                        scenario, run.pk)
        return written


def _die_with_parent() -> None:
    """Linux: the agent gets SIGTERM if the sandbox dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def enable_sandbox(pki_dir: Path) -> None:
    """Settings of a served sandbox: self-service onboarding, fault injection and client
    certificates requested (sandbox sites use mTLS). Call before serving."""
    settings.CONFORMANCE_SELF_SERVICE = True
    settings.CONFORMANCE_FAULTS_ENABLED = True
    settings.VTN_CALLBACK_ALLOW_PRIVATE = True  # sandbox VENs run on loopback
    if FAULTS_MIDDLEWARE not in settings.MIDDLEWARE:
        settings.MIDDLEWARE = [settings.MIDDLEWARE[0], FAULTS_MIDDLEWARE,
                               *settings.MIDDLEWARE[1:]]
    if not getattr(settings, "VTN_TLS_CLIENT_CA", ""):
        settings.VTN_TLS_CLIENT_CA = str(Path(pki_dir) / "ca.pem")
    if not settings.VTN_WEBHOOK_CA_BUNDLE:
        settings.VTN_WEBHOOK_CA_BUNDLE = str(webhook_trust(Path(pki_dir)))
    os.environ.update({"CONFORMANCE_SELF_SERVICE": "true", "CONFORMANCE_FAULTS_ENABLED": "true",
                       "VTN_CALLBACK_ALLOW_PRIVATE": "true",
                       "VTN_TLS_CLIENT_CA": settings.VTN_TLS_CLIENT_CA,
                       "VTN_WEBHOOK_CA_BUNDLE": settings.VTN_WEBHOOK_CA_BUNDLE})


def webhook_trust(pki_dir: Path) -> Path:
    """The certificates a sandbox trusts on webhook callbacks: the public ones every VTN
    trusts, plus the sandbox's own CA, so that a receiver on this machine with a
    certificate from the development PKI (``var/pki/server.pem`` names 127.0.0.1) passes
    the echo check. Written beside the CA; rewritten on every start."""
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    path = pki_dir / "webhook-trust.pem"
    public = Path(DEFAULT_CA_BUNDLE_PATH).read_text()
    path.write_text(public.rstrip("\n") + "\n" + (pki_dir / "ca.pem").read_text())
    return path


@transaction.atomic
def _ensure_site(operator: str, name: str, units: tuple) -> tuple[FspSite, str]:
    """The fleet site (onboarded on first use) and a fresh client secret."""
    site = FspSite.objects.select_related("ven").filter(
        fsp__operator__code=operator, fsp__identifier=FLEET_FSP, name=name).first()
    if site is None:
        specs = [registry.UnitSpec(reference=ref, capacity_kw=Decimal(kw), direction=direction,
                                   capacity_kvar=FLEET_KVAR.get(ref))
                 for ref, kw, direction in units]
        result = onboarding.onboard_fsp(operator=operator, fsp=FLEET_FSP, units=specs, site=name,
                                        fsp_name="Demo fleet")
        site = FspSite.objects.select_related("ven").get(ven__client_id=result["client_id"])
        secret = result["client_secret"]
    else:
        secret = rotate_secret(client_id=site.ven.client_id).client_secret
    for product in PRODUCTS:
        template = products.template(product)
        references = [ref for ref, kw, direction in units
                      if products.unit_problem(product, template.directions, direction=direction,
                                               capacity_kw=kw) is None]
        identifier = f"FLEET-{name}-{product.replace('_', '')}"
        if references and not Contract.objects.filter(operator__code=operator,
                                                      identifier=identifier).exists():
            onboarding.create_contract(operator=operator, identifier=identifier, fsp=FLEET_FSP,
                                       product=product, units=references,
                                       availability_price=AVAILABILITY_PRICE,
                                       utilisation_price=UTILISATION_PRICE)
    for unit in site.units.filter(reference__in=FLEET_KVAR, capacity_kvar__isnull=True):
        onboarding.set_unit_capabilities(unit=unit, capacity_kvar=FLEET_KVAR[unit.reference],
                                         changed_by="sandbox", reason="demo fleet inverter")
    return site, secret


def _ensure_key(site: FspSite, key_path: Path) -> str:
    """The site's signing key file, registered with the VTN; returns its kid."""
    if not key_path.exists():
        key_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(jose.private_key_pem(jose.generate_private_key()))
    key = jose.load_private_key(key_path.read_bytes())
    x = jose.public_jwk(key, "k")["x"]
    kid = f"fleet-{site.name}-{x[:8].replace('-', 'a').replace('_', 'b')}"
    if not SiteSigningKey.objects.filter(site=site, kid=kid).exists():
        site_keys.register_site_key(site=site, jwk=jose.public_jwk(key, kid))
    return kid


def prepare(*, base_url: str, pki_dir: Path, root: Path | None = None) -> Fleet:
    """Onboard the demo fleet (idempotent) and write each site's agent configuration."""
    programs.load_products()
    operator = settings.CONFORMANCE_OPERATOR
    root = Path(root or Path(settings.VAR_DIR) / "fleet")
    sites = []
    for name, units in FLEET_SITES.items():
        site, secret = _ensure_site(operator, name, units)
        directory = root / name
        (directory / "state").mkdir(parents=True, exist_ok=True)
        secret_file = directory / "client-secret"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret)
        key_path = directory / "state" / "site-signing-key.pem"
        kid = _ensure_key(site, key_path)
        config = {
            "vtn_url": base_url, "client_id": site.ven.client_id,
            "client_secret_file": str(secret_file), "ca_bundle": str(Path(pki_dir) / "ca.pem"),
            "ven_name": site.ven.ven_name,
            "handler_command": [sys.executable, "-c", HANDLER],
            "poll_interval_s": POLL_INTERVAL_S, "backoff_initial_s": 1.0,
            "backoff_max_s": 30.0, "state_dir": str(directory / "state"),
            "signing_key": str(key_path), "signing_kid": kid,
            "drop_dir": str(directory / "drop"), "log_format": "json",
        }
        (directory / "config.toml").write_text(
            "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()))
        sites.append(FleetSite(name=name, directory=directory, ven_name=site.ven.ven_name,
                               client_id=site.ven.client_id,
                               units=[ref for ref, _, _ in units]))
    return Fleet(operator=operator, sites=sites)
