"""Settlement at scale: one month of half-hourly meter data for 1,000 dispatch units.

What it does, in one run on this machine:
1. creates a fresh PostgreSQL database of its own (dropped at the end) and migrates it;
2. onboards FSPs, units and contracts through the real services (``onboard_fsp``,
   ``create_contract``; half the contracts use ``high-3-of-5``, half ``meter-before-4``,
   all with an availability price), issues several real dispatches per unit over the
   month (``issue_dispatch``: signed revisions), declares availability every evening,
   and loads with PostgreSQL COPY one month of half-hourly USAGE readings per unit plus
   the history days before the month that the statement reads for its baselines;
3. times ``settle_month`` for every contract (statements computed and persisted) and,
   over the same readings in the same run, a plain per-reading Python loop (a cursor
   row by row, kWh to kW, a naive baseline and payment per dispatched period);
4. prints both (wall seconds, readings per second, CPU seconds of this process and of its
   PostgreSQL backend, the load average around each run), their ratio, and the machine.

Usage: ``python benchmarks/settlement.py [--units 1000] [--database-url URL]``; the URL
names any database on the PostgreSQL server (the benchmark makes and drops its own).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.poll import create_database, machine  # noqa: E402

YEAR, MONTH = 2026, 11  # 30 days, no clock change: 1,440 periods per unit
UNITS_PER_FSP = 100
DISPATCHES_PER_UNIT = 3
PRICE_GBP_PER_MWH = Decimal(300)


def server_cpu_seconds() -> float:
    """CPU time used so far by this connection's PostgreSQL backend (NaN unless the server
    runs on this machine and its /proc is readable)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


@contextlib.contextmanager
def without_indexes(cursor, table: str) -> Iterator[None]:
    """A bulk load into ``table`` the way PostgreSQL loads fastest: its secondary indexes
    and unique constraints dropped and its triggers (the deferred foreign-key checks, and
    the readings' packing into days, which the caller does once afterwards) off during
    the load, then every index and constraint built again from its own definition and
    the triggers back on. The schema afterwards is the one migrated."""
    cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = %s::regclass AND contype = 'u'", [table])
    constraints = cursor.fetchall()
    cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
                   "AND indexname NOT IN (SELECT conname FROM pg_constraint "
                   "WHERE conrelid = %s::regclass AND contype IN ('p', 'u'))", [table, table])
    indexes = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
    try:
        yield
    finally:
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        for _, definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def bulk_units(result: dict, specs: list) -> None:
    """Add units to a site that ``onboarding.onboard_fsp`` registered (``result`` is its
    answer), in bulk: for each unit the rows ``onboard_fsp`` itself writes, that is the
    VEN's resource named after the unit (its target label, owned by the site's client) and
    the dispatch unit, without a query per unit. Nothing listens for the resources'
    change signals here (no subscriptions, no MQTT), so none is sent."""
    from dispatch import registry
    from dispatch.models import DispatchUnit, FspSite
    from vtn import generations
    from vtn import targets as target_rules
    from vtn.models import Resource, TargetLabel, Ven

    ven = Ven.objects.get(pk=result["ven_id"])
    site = FspSite.objects.select_related("fsp").get(ven=ven)
    resources, labels, units = [], [], []
    for spec in specs:
        targets = target_rules.from_strings([registry.unit_label(
            result["operator"], result["fsp"], spec.reference)])
        resource = Resource(ven=ven, resource_name=spec.reference, client_id=ven.client_id,
                            targets=targets)
        resources.append(resource)
        labels += [TargetLabel(kind=TargetLabel.Kind.RESOURCE, object_id=resource.pk,
                               label=label) for label in sorted(target_rules.labels(targets))]
        units.append(DispatchUnit(
            fsp=site.fsp, site=site, reference=spec.reference, capacity_kw=spec.capacity_kw,
            capacity_kvar=spec.capacity_kvar, direction=spec.direction, zone="",
            resource=resource))
    Resource.objects.bulk_create(resources)
    TargetLabel.objects.bulk_create(labels)
    DispatchUnit.objects.bulk_create(units)
    generations.bump(generations.TARGETING)


def checked_in_bulk(wanted: list) -> list:
    """``issuing.check_issue`` of many dispatches, with each unit's one contract and its
    product's rules looked up once rather than once per dispatch (``issuing.check_new``
    is the same check); the references are fresh (:func:`issuing.new_reference`, drawn
    again if taken: 30,000 random 32-bit references would collide one time in ten).
    ``wanted`` holds (unit, start, end, timings, now)."""
    from dispatch import issuing
    from dispatch.models import Contract, DispatchInstruction

    by_unit: dict[int, Contract] = {}
    for contract in Contract.objects.select_related("product", "operator").prefetch_related(
            "units"):
        for unit in contract.units.all():
            if unit.pk in by_unit:
                raise SystemExit(f"unit {unit} has several contracts")
            by_unit[unit.pk] = contract
    product_rules = {pk: issuing.product_rules(c) for pk, c in
                     {c.pk: c for c in by_unit.values()}.items()}
    taken = set(DispatchInstruction.objects.values_list("reference", flat=True))

    def fresh() -> str:  # check_issue refuses a taken reference; draw again instead
        reference = issuing.new_reference()
        while reference in taken:
            reference = issuing.new_reference()
        taken.add(reference)
        return reference

    return [issuing.check_new(unit=unit, contract=by_unit[unit.pk], reference=fresh(),
                              service_start=start, service_end=end, timings=timings, now=now,
                              product_rules=product_rules[by_unit[unit.pk].pk])
            for unit, start, end, timings, now in wanted]


def bulk_dispatches(checked: list) -> None:
    """Write dispatches that passed ``issuing.check_issue`` as the issuing service would
    store them (instruction and signed revision 1), in bulk: the same checks and the same
    signed documents, without the audit chain and the OpenADR event of each (settlement
    reads neither), so that 30,000 dispatches seed in minutes."""
    from dispatch import signing, signing_keys
    from dispatch.models import DispatchInstruction, DispatchRevision
    from gbflex_profile import jose

    keys: dict[int, tuple] = {}
    for batch in range(0, len(checked), 2000):
        part = checked[batch:batch + 2000]
        for item in part:
            item.raise_violations()
            item.instruction.revision = 1
        DispatchInstruction.objects.bulk_create([item.instruction for item in part])
        revisions = []
        for item in part:
            operator = item.instruction.operator
            if operator.pk not in keys:
                key = signing_keys.active_signing_key(operator)
                keys[operator.pk] = (key, signing.unlock(key.private_key_pem,
                                                         signing_keys._passphrase()))
            key, private = keys[operator.pk]
            draft, document = item.draft, item.draft.document()
            revisions.append(DispatchRevision(
                instruction=item.instruction, number=draft.revision, status=draft.status,
                urgency=draft.urgency, instruction_time=draft.instruction_time,
                service_start=draft.service_start, service_end=draft.service_end,
                document=document, signature=jose.sign(document, private, key.kid),
                signing_key=key, issued_by="bench"))
        DispatchRevision.objects.bulk_create(revisions)


def seed(units: int, seed_value: int, issued_units: int = 100, bulk: bool = True) -> dict:
    """Everything a month's statements need, through the real services where it matters:
    the dispatches of the first ``issued_units`` units through ``issue_dispatch``, the
    others checked by the same service and written in bulk (:func:`bulk_dispatches`).
    With ``bulk`` (what makes 10,000 units seed in minutes) each FSP is onboarded through
    ``onboard_fsp`` with its first unit and its other units are added by
    :func:`bulk_units`, and the dispatches written in bulk are checked by
    :func:`checked_in_bulk`; without it every unit goes through ``onboard_fsp`` and every
    dispatch through ``check_issue``. Both give the same rows (``--check-seed``)."""
    from django.db import connection, transaction

    from dispatch import issuing, onboarding, programs, registry
    from dispatch.models import (
        AvailabilityDeclaration,
        DispatchUnit,
        MeterReading,
        ReportIntake,
    )
    from dispatch.rules import Timing
    from settlement import statement

    rng = random.Random(seed_value)
    first, after = statement.month_bounds(YEAR, MONTH)
    lookback = statement.BaselineSpec().lookback_days + 2  # what settlement reads back
    since = first - timedelta(days=lookback)
    started = time.monotonic()
    fsps = (units + UNITS_PER_FSP - 1) // UNITS_PER_FSP
    contracts = []
    for number in range(fsps):
        fsp = f"fsp{number:02d}"
        count = min(UNITS_PER_FSP, units - number * UNITS_PER_FSP)
        references = [f"u{number:02d}{index:03d}" for index in range(count)]
        specs = [registry.parse_unit_spec(f"{ref}:200") for ref in references]
        result = onboarding.onboard_fsp(operator="ENWL", fsp=fsp,
                                        units=specs[:1] if bulk else specs)
        if bulk and len(specs) > 1:
            bulk_units(result, specs[1:])
        contracts.append(onboarding.create_contract(
            operator="ENWL", identifier=f"C-{number:02d}", fsp=fsp, product="DYNAMIC",
            units=references, availability_price=Decimal("4.50"),
            utilisation_price=PRICE_GBP_PER_MWH,
            baseline_method="high-3-of-5" if number % 2 == 0 else "meter-before-4"))
    onboarded = time.monotonic() - started

    started = time.monotonic()
    unit_rows = list(DispatchUnit.objects.select_related("fsp").order_by("reference"))
    days = (after - first).days
    dispatched: dict[int, list[tuple[datetime, datetime]]] = {}
    dispatch_count = 0
    drafts = []  # checked drafts of the dispatches written in bulk
    wanted: list[tuple] = []  # what checked_in_bulk checks
    for position, unit in enumerate(unit_rows):
        windows = []
        for day in sorted(rng.sample(range(days), DISPATCHES_PER_UNIT)):
            start = first + timedelta(days=day, hours=rng.choice((7, 12, 17)),
                                      minutes=rng.choice((0, 30)))
            end = start + timedelta(hours=rng.choice((1, 2)))
            timings = [Timing(setpoint_time=start, volume=Decimal(rng.choice((40, 60))))]
            if position < issued_units:  # the whole issuing service
                with transaction.atomic():
                    issuing.issue_dispatch(
                        unit=unit, service_start=start, service_end=end, timings=timings,
                        product=programs.find_product("DYNAMIC"), issued_by="bench",
                        now=start - timedelta(hours=2))
            elif bulk:
                wanted.append((unit, start, end, timings, start - timedelta(hours=2)))
            else:
                drafts.append(issuing.check_issue(
                    unit=unit, service_start=start, service_end=end, timings=timings,
                    product=programs.find_product("DYNAMIC"), now=start - timedelta(hours=2)))
            windows.append((start, end))
            dispatch_count += 1
        dispatched[unit.pk] = windows
    bulk_dispatches(drafts + checked_in_bulk(wanted) if wanted else drafts)
    issued = time.monotonic() - started

    started = time.monotonic()
    received = after + timedelta(days=1)
    intakes = {site_id: ReportIntake.objects.create(
        site_id=site_id, kind="metering", report_id="bench", client_id="bench",
        received_at=received).pk for site_id in {u.site_id for u in unit_rows}}
    declarations = []
    availability = {}
    for site_id in intakes:
        availability[site_id] = ReportIntake.objects.create(
            site_id=site_id, kind="availability", report_id="bench", client_id="bench",
            received_at=first - timedelta(days=1))
    for unit in unit_rows:
        for day in range(days):
            start = first + timedelta(days=day, hours=16)
            declarations.append(AvailabilityDeclaration(
                unit=unit, start=start, end=start + timedelta(hours=4),
                available_kw=Decimal(150), declared_at=first - timedelta(days=1),
                intake=availability[unit.site_id]))
    AvailabilityDeclaration.objects.bulk_create(declarations, batch_size=5000)

    meta = MeterReading._meta
    columns = ["unit_id", "reading_type", "start", "end", "value", "quality", "version",
               "received_at", "intake_id"]
    step = timedelta(minutes=30)
    periods = int((after - since) / step)
    history = int((first - since) / step)
    stamp = received.isoformat()
    moments = [since + step * index for index in range(periods)]
    spans = [f"{m.isoformat()}\t{(m + step).isoformat()}\t" for m in moments]
    with connection.cursor() as cursor, without_indexes(cursor, meta.db_table):
        raw = cursor.connection.cursor()
        quoted = ", ".join(f'"{column}"' for column in columns)
        sql = f"COPY {meta.db_table} ({quoted}) FROM STDIN"
        with raw.copy(sql) as copy:
            for unit in unit_rows:
                base = rng.uniform(40, 60)  # kWh per half hour: 80 to 120 kW
                cut = set()
                for start, end in dispatched[unit.pk]:
                    moment = start
                    while moment < end:
                        cut.add(moment)
                        moment += step
                head, tail = f"{unit.pk}\tUSAGE\t", f"\tOK\t1\t{stamp}\t{intakes[unit.site_id]}\n"
                copy.write("".join(
                    f"{head}{spans[index]}"
                    f"{base + rng.uniform(-5, 5) - (22 if moments[index] in cut else 0):.3f}"
                    f"{tail}" for index in range(periods)))
        cursor.execute(f"ANALYZE {meta.db_table}")
    with connection.cursor() as cursor:  # what the readings' trigger does for each write
        cursor.execute("SELECT dispatch_pack_all_reading_days()")
        cursor.execute("ANALYZE dispatch_readingday")
    loaded = time.monotonic() - started
    return {"contracts": [c.pk for c in contracts], "units": len(unit_rows),
            "dispatches": dispatch_count, "declarations": len(declarations),
            "month_readings": len(unit_rows) * (periods - history),
            "history_readings": len(unit_rows) * history, "history_days": lookback,
            "since": since, "first": first, "after": after,
            "seconds": {"onboard": round(onboarded, 1), "dispatches": round(issued, 1),
                        "readings_and_declarations": round(loaded, 1)}}


def seed_rows() -> dict:
    """The seeded rows that settlement and the dispatch registry read, with database ids,
    random dispatch references and creation times replaced by what they stand for, so
    that two seedings of the same ``--seed`` compare equal. Left out: the OpenADR event,
    audit record and random key of each dispatch (the bulk path writes no event or audit
    record; settlement reads neither, and takes each revision's document digest from its
    signature's payload without verifying it: signatures are checked here instead)."""
    import re

    from dispatch.models import (
        AvailabilityDeclaration,
        Contract,
        DispatchRevision,
        DispatchUnit,
        FspSite,
        MeterReading,
    )
    from gbflex_profile import jose
    from vtn.models import Resource, TargetLabel

    def text(row: tuple) -> list[str]:
        return [str(value) for value in row]

    names = dict(Resource.objects.values_list("id", "resource_name"))
    units = [text((u.fsp.operator.code, u.fsp.identifier, u.site.name, u.site.ven.ven_name,
                   u.reference, u.capacity_kw, u.capacity_kvar, u.direction, u.zone,
                   u.resource.resource_name, json.dumps(u.resource.targets),
                   u.resource.client_id == u.site.ven.client_id, u.resource.attributes))
             for u in DispatchUnit.objects.select_related(
                 "fsp__operator", "site__ven", "resource").order_by("reference")]
    labels = sorted(text((kind, names.get(pk, "(random id)"), label)) for kind, pk, label in
                    TargetLabel.objects.values_list("kind", "object_id", "label"))
    sites = sorted(text(row) for row in FspSite.objects.values_list(
        "fsp__identifier", "name", "ven__ven_name", "comms_state"))
    contracts = [text((c.operator.code, c.identifier, c.fsp.identifier, c.product.code,
                       json.dumps(c.service_windows), c.availability_price,
                       c.utilisation_price, c.baseline_method, c.capacity_kw,
                       c.comms_loss_availability, c.reactive_utilisation_price,
                       c.emergency_premium_percent, c.reactive_baseline_method,
                       sorted(c.units.values_list("reference", flat=True))))
                 for c in Contract.objects.select_related("operator", "fsp", "product")
                 .order_by("identifier")]
    dispatches = []
    pattern = re.compile(r"^\d{8}-[0-9a-f]{8}$")
    for r in DispatchRevision.objects.select_related(
            "instruction__operator", "instruction__contract", "instruction__unit",
            "signing_key").order_by("instruction__unit__reference", "service_start"):
        i = r.instruction
        document = dict(r.document)
        reference = document.pop("dispatchRef")
        if reference != i.reference or not pattern.match(reference):
            raise SystemExit(f"dispatch reference {reference!r} is not a fresh reference")
        verified = jose.verify(r.signature, {"keys": [r.signing_key.public_jwk]})
        dispatches.append(text((
            i.operator.code, i.contract.identifier, i.unit.reference, i.revision, i.status,
            i.urgency, i.service_start, i.service_end, r.number, r.status, r.urgency,
            r.instruction_time, r.service_start, r.service_end, json.dumps(document),
            verified == r.document, r.issued_by, r.reason)))
    declarations = [text(row) for row in AvailabilityDeclaration.objects.order_by(
        "unit__reference", "start").values_list(
        "unit__reference", "start", "end", "available_kw", "declared_at", "intake__kind",
        "intake__received_at")]
    readings = [text(row) for row in MeterReading.objects.order_by(
        "unit__reference", "start").values_list(
        "unit__reference", "reading_type", "start", "end", "value", "quality", "version",
        "received_at", "intake__kind")]
    return {"units": units, "target_labels": labels, "sites": sites, "contracts": contracts,
            "dispatches": dispatches, "declarations": declarations, "readings": readings}


def check_seed(args: argparse.Namespace) -> None:
    """Seed ``args.units`` units both ways (:func:`seed` with and without ``bulk``), each in
    a database of its own, and stop unless every row of :func:`seed_rows` is the same."""
    dumps = {}
    for how in ("bulk", "services"):
        command = [sys.executable, str(Path(__file__).resolve()), "--units", str(args.units),
                   "--issued-units", str(args.issued_units), "--seed", str(args.seed),
                   "--database-url", args.database_url, "--dump-rows"]
        if how == "services":
            command.append("--no-bulk")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"seeding through {how} failed:\n{done.stdout}\n{done.stderr}")
        dumps[how] = json.loads(done.stdout.strip().splitlines()[-1])
    for table, rows in dumps["services"].items():
        other = dumps["bulk"][table]
        if rows != other:
            first = next((a, b) for a, b in zip(rows, other, strict=False) if a != b) \
                if len(rows) == len(other) else (len(rows), len(other))
            raise SystemExit(f"{table}: the bulk seeding differs from the services': {first}")
        print(f"{table}: {len(rows)} rows, the same both ways")
    print(f"bulk seeding of {args.units} units ({args.issued_units} with dispatches issued "
          "through issue_dispatch) writes the same rows as the services")


def seeded(units_hint: int) -> dict:
    """What :func:`seed` returned, read back from a database it filled earlier."""
    from dispatch.models import (
        AvailabilityDeclaration,
        Contract,
        DispatchInstruction,
        DispatchUnit,
        MeterReading,
    )
    from settlement import statement

    first, after = statement.month_bounds(YEAR, MONTH)
    lookback = statement.BaselineSpec().lookback_days + 2
    since = first - timedelta(days=lookback)
    readings = MeterReading.objects.filter(start__gte=since, start__lt=after)
    month_readings = readings.filter(start__gte=first).count()
    return {"contracts": list(Contract.objects.order_by("pk").values_list("pk", flat=True)),
            "units": DispatchUnit.objects.count(),
            "dispatches": DispatchInstruction.objects.count(),
            "declarations": AvailabilityDeclaration.objects.count(),
            "month_readings": month_readings,
            "history_readings": readings.count() - month_readings, "history_days": lookback,
            "since": since, "first": first, "after": after, "seconds": {}}


def settle_all(contract_ids: list[int]) -> dict:
    """The measured run: every contract's statement for the month, persisted."""
    from dispatch.models import Contract
    from settlement import services

    month = services.Month(YEAR, MONTH)
    lines = held = 0
    server, load = server_cpu_seconds(), os.getloadavg()[0]
    started, cpu = time.monotonic(), time.process_time()
    for contract in Contract.objects.filter(pk__in=contract_ids).order_by("pk"):
        row = services.settle_month(contract=contract, month=month)
        lines += len(row.document["lines"])
        held += row.held_lines
    return {"seconds": time.monotonic() - started, "cpu_seconds": time.process_time() - cpu,
            "server_cpu_seconds": server_cpu_seconds() - server,
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
            "statements": len(contract_ids), "lines": lines, "held_lines": held}


def plain_loop(since: datetime, after: datetime, contract_ids: list[int]) -> dict:
    """The floor: the same readings (those of the contracts' units) row by row from a
    plain cursor, kWh to kW per period, then per dispatched period a naive baseline (mean
    of the same period on the five days before), delivered kW and payment. No
    statements, no persistence."""
    from django.db import connection, transaction

    from dispatch.models import Contract, DispatchRevision, MeterReading

    unit_ids = list(Contract.units.through.objects.filter(
        contract_id__in=contract_ids).values_list("dispatchunit_id", flat=True))

    server, load = server_cpu_seconds(), os.getloadavg()[0]
    started, cpu = time.monotonic(), time.process_time()
    kw: dict[tuple[int, datetime], Decimal] = {}
    count = 0
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.connection.cursor(name="plain_loop")  # server-side: row by row
        raw.itersize = 20000
        raw.execute(
            f'SELECT unit_id, start, "end", value FROM {MeterReading._meta.db_table} '
            "WHERE superseded_at IS NULL AND start >= %s AND start < %s "
            "AND unit_id = ANY(%s) ORDER BY unit_id, reading_type, start",
            (since, after, unit_ids))
        for unit_id, start, end, value in raw:
            hours = Decimal((end - start).total_seconds()) / 3600
            kw[(unit_id, start)] = value / hours
            count += 1
        raw.close()
    revisions = DispatchRevision.objects.filter(
        status="run", instruction__unit_id__in=unit_ids).values_list(
        "instruction__unit_id", "service_start", "service_end", "document")
    step = timedelta(minutes=30)
    payment = Decimal(0)
    periods = 0
    for unit_id, start, end, document in revisions:
        ordered = Decimal(str(document["serviceTimings"][0]["volume"]))
        moment = start
        while moment < end:
            history = [kw[(unit_id, moment - timedelta(days=d))] for d in range(1, 6)]
            baseline = sum(history) / len(history)
            delivered = min(max(baseline - kw[(unit_id, moment)], Decimal(0)), ordered)
            payment += delivered / 2 / 1000 * PRICE_GBP_PER_MWH
            periods += 1
            moment += step
    return {"seconds": time.monotonic() - started, "cpu_seconds": time.process_time() - cpu,
            "server_cpu_seconds": server_cpu_seconds() - server,
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
            "readings": count,
            "dispatched_periods": periods, "payment_gbp": str(round(payment, 2))}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB): Linux's VmHWM, which starts
    afresh when the process executes its program (``ru_maxrss`` keeps the peak of the
    parent it was forked from, so a big parent would show in every child)."""
    import resource

    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(what: str, args: argparse.Namespace, database_url: str,
              contracts: list[int]) -> dict:
    """One measured run in a fresh Python process (its peak memory is its own):
    ``settle`` (settle_month for ``contracts``, their statements deleted first so each
    run writes them), ``reference`` (the row-by-row reference, no writes) or ``plain``."""
    if what == "settle":  # here, so that deleting counts in no child's time or memory
        from settlement.models import Statement

        Statement.objects.filter(contract_id__in=contracts).defer("document").delete()
    command = [sys.executable, __file__, "--child", what, "--reuse", database_url,
               "--contracts", ",".join(map(str, contracts))]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "DATABASE_URL": database_url})
    if done.returncode:
        raise SystemExit(f"{what} run failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(what: str, contracts: list[int], since: datetime, after: datetime) -> dict:
    from settlement.models import Statement

    if what == "settle":
        if Statement.objects.filter(contract_id__in=contracts).exists():
            raise SystemExit("the statements to settle exist already")
        result = settle_all(contracts)
    elif what == "reference":
        result = reference_all(contracts)
    else:
        result = plain_loop(since, after, contracts)
    return {**result, "peak_rss_mib": round(peak_rss_mib(), 1)}


def reference_all(contract_ids: list[int]) -> dict:
    """The statements computed with the row-by-row reference (tests/settlement/reference.py:
    how settlement read its inputs before arrays), not persisted."""
    from dispatch.models import Contract
    from tests.settlement import reference

    lines = 0
    server, load = server_cpu_seconds(), os.getloadavg()[0]
    started, cpu = time.monotonic(), time.process_time()
    for contract in Contract.objects.filter(pk__in=contract_ids).order_by("pk"):
        lines += len(reference.statement_document(contract, YEAR, MONTH, 1)["lines"])
    return {"seconds": time.monotonic() - started, "cpu_seconds": time.process_time() - cpu,
            "server_cpu_seconds": server_cpu_seconds() - server,
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)], "lines": lines}


def celery_rounds(args: argparse.Namespace, database_url: str, contracts: list[int],
                  workdir: Path) -> list[dict]:
    """Every contract's statement settled by Celery workers (real processes, Redis broker):
    with 1 worker, then 2, alternately, ``args.rounds`` times each."""
    from celery import Celery

    queue = f"bench-{secrets.token_hex(4)}"
    env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": args.redis_url,
           "CELERY_RESULT_BACKEND": args.redis_url, "CELERY_TASK_DEFAULT_QUEUE": queue}
    app = Celery("bench", broker=args.redis_url, backend=args.redis_url)
    workers = []

    def start(name: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "--queues", queue, "--hostname", f"{name}-{queue}@%h", "--loglevel",
             "WARNING", "--without-gossip", "--without-mingle"], cwd=ROOT, env=env,
            stdout=(workdir / f"{name}.log").open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0)
            if any(node.startswith(f"{name}-{queue}@") for r in replies for node in r):
                return process
        raise SystemExit(f"worker {name} did not start")

    from settlement.models import Statement

    rounds = []
    started_workers = 0
    try:
        for _ in range(args.rounds):
            for count in (1, 2):
                while len(workers) < count:
                    started_workers += 1
                    workers.append(start(f"w{started_workers}"))
                Statement.objects.filter(contract_id__in=contracts).delete()
                load = os.getloadavg()[0]
                started = time.monotonic()
                sent = datetime.now().astimezone().isoformat()
                results = [app.send_task("settlement.tasks.settle_statement",
                                         args=[pk, f"{YEAR:04d}-{MONTH:02d}", sent],
                                         queue=queue) for pk in contracts]
                done = [result.get(timeout=3600) for result in results]
                rounds.append({"workers": count, "seconds": time.monotonic() - started,
                               "load_average": [round(load, 2),
                                                round(os.getloadavg()[0], 2)],
                               "tasks_by_worker": {name: sum(d["worker"] == name for d in done)
                                                   for name in {d["worker"] for d in done}}})
            stopping = workers.pop()
            stopping.terminate()
            stopping.wait(timeout=120)
    finally:
        for process in workers:
            process.terminate()
            process.wait(timeout=120)
        app.close()
    return rounds


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


FLEET_UNITS = 1000  # the size of the interleaved rounds against the plain loop


def measure(args: argparse.Namespace, database_url: str, data: dict) -> dict:
    """The measured runs, interleaved: per round, settle_month of the first 1,000 units'
    contracts and the plain loop over the same readings (and the row-by-row reference with
    --reference), each in a fresh process; then time and peak memory against the number of
    units (up to all of them); then Celery with 1 worker against 2 (1,000 units)."""
    contracts = data["contracts"]
    fleet = contracts[:FLEET_UNITS // UNITS_PER_FSP]
    share = len(fleet) / len(contracts)
    readings = round((data["month_readings"] + data["history_readings"]) * share)
    rounds = []
    for _ in range(args.rounds):
        row = {"settle": run_child("settle", args, database_url, fleet),
               "plain": run_child("plain", args, database_url, fleet)}
        if args.reference:
            row["reference"] = run_child("reference", args, database_url, fleet)
        row["plain_over_settle"] = row["plain"]["seconds"] / row["settle"]["seconds"]
        row["plain_cpu_over_settle_cpu"] = row["plain"]["cpu_seconds"] / \
            row["settle"]["cpu_seconds"]
        rounds.append(row)
    sizes = []
    counts = sorted({1, len(fleet), len(contracts)})
    for size_round in range(1, args.size_rounds + 1):  # interleaved: 100, 1,000, all, ...
        for count in counts:
            run = run_child("settle", args, database_url, contracts[:count])
            sizes.append({"round": size_round, "contracts": count,
                          "units": min(count * UNITS_PER_FSP, data["units"]),
                          "seconds": round(run["seconds"], 2),
                          "cpu_seconds": round(run["cpu_seconds"], 2),
                          "peak_rss_mib": run["peak_rss_mib"],
                          "load_average": run["load_average"]})
    workers = celery_rounds(args, database_url, fleet, Path(tempfile.mkdtemp())) \
        if args.celery else []
    one = [r["seconds"] for r in workers if r["workers"] == 1]
    two = [r["seconds"] for r in workers if r["workers"] == 2]
    settle_seconds = [r["settle"]["seconds"] for r in rounds]
    largest_units = max(size["units"] for size in sizes)
    biggest = [size for size in sizes if size["units"] == largest_units]
    fleet_size = [size for size in sizes if size["units"] == min(FLEET_UNITS, largest_units)]

    def ratio(key: str) -> float:  # median over the size rounds of largest / 1,000 units
        return round(median([a[key] / b[key] for a, b in zip(biggest, fleet_size,
                                                              strict=True)]), 2)
    return {
        "machine": {**machine(), "postgresql": postgres_version(database_url)},
        "setup": {"units": data["units"], "contracts": len(contracts),
                  "dispatches": data["dispatches"],
                  "availability_declarations": data["declarations"],
                  "month": f"{YEAR:04d}-{MONTH:02d}", "month_readings": data["month_readings"],
                  "history_days": data["history_days"],
                  "history_readings": data["history_readings"],
                  "seed_seconds": data["seconds"]},
        "rounds": rounds,
        "fleet_units": min(FLEET_UNITS, data["units"]),
        "settle_month_median_seconds": round(median(settle_seconds), 2),
        "readings_per_s": round(readings / median(settle_seconds)) if rounds else None,
        "plain_over_settle_median": round(median([r["plain_over_settle"] for r in rounds]), 2),
        "plain_cpu_over_settle_cpu_median": round(median(
            [r["plain_cpu_over_settle_cpu"] for r in rounds]), 2),
        "reference_over_settle_median": round(median(
            [r["reference"]["seconds"] / r["settle"]["seconds"] for r in rounds
             if "reference" in r]), 2),
        "sizes": sizes,
        "largest_over_fleet": ratio("seconds"),
        "largest_over_fleet_cpu": ratio("cpu_seconds"),
        "largest_over_fleet_rss": ratio("peak_rss_mib"),
        "plain_seconds_scaled": round(median([r["plain"]["seconds"] for r in rounds])
                                      * largest_units / min(FLEET_UNITS, data["units"]), 1)
        if rounds else None,
        "celery": workers,
        "two_workers_speedup_median": round(median(
            [a / b for a, b in zip(one, two, strict=False)]), 2),
    }


def summarise(report: dict, data: dict) -> None:
    fleet = report["fleet_units"]
    print()
    print(f"{fleet:,} units, interleaved rounds:")
    print(f"{'round':>5} {'settle s':>9} {'cpu s':>6} {'pg cpu s':>8} {'RSS MiB':>8} "
          f"{'plain s':>8} {'plain cpu':>9} {'reference s':>11} {'plain/settle':>12} "
          f"{'load avg':>14}")
    for number, row in enumerate(report["rounds"], start=1):
        settle, plain = row["settle"], row["plain"]
        ref = row.get("reference", {}).get("seconds", float("nan"))
        print(f"{number:>5} {settle['seconds']:>9.2f} {settle['cpu_seconds']:>6.2f} "
              f"{settle['server_cpu_seconds']:>8.2f} {settle['peak_rss_mib']:>8.0f} "
              f"{plain['seconds']:>8.2f} {plain['cpu_seconds']:>9.2f} {ref:>11.2f} "
              f"{row['plain_over_settle']:>12.2f} {str(settle['load_average']):>14}")
    for size in report["sizes"]:
        print(f"size round {size['round']}, "
              f"{size['units']:>6} units: {size['seconds']:>7.2f} s ({size['cpu_seconds']:.2f} "
              f"CPU s), peak RSS of the settling process {size['peak_rss_mib']:.0f} MiB "
              f"(load average {size['load_average']})")
    largest = report["sizes"][-1]["units"]
    if largest > fleet:
        print(f"{largest:,} units took {report['largest_over_fleet']}x the {fleet:,}-unit wall "
              f"time and {report['largest_over_fleet_cpu']}x its Python CPU (aim: at most "
              f"{largest // fleet * 1.2:.0f}x); peak RSS {report['largest_over_fleet_rss']}x "
              f"the {fleet:,}-unit peak (flat: 1x); medians of the per-round ratios of the "
              "size rounds. The plain loop was measured on "
              f"{fleet:,} units only; at {largest:,} units it reads {largest // fleet}x the rows, "
              f"so scaled it would take about {largest // fleet}x its {fleet:,}-unit time "
              f"({report['plain_seconds_scaled']} s, scaled, not measured).")
    print("Seeding: the first units' dispatches went through issue_dispatch; the others were "
          "checked as check_issue checks them and written in bulk, each signed with the "
          "operator's key (a valid signature, whose payload settlement hashes as the "
          "document's digest; settlement does not verify signatures); "
          "units beyond each FSP's first were added in bulk (--check-seed compares both "
          f"ways). Seed seconds: {report['setup']['seed_seconds']}.")
    for run in report["celery"]:
        print(f"celery, {run['workers']} worker(s), {fleet:,} units: {run['seconds']:.2f} s "
              f"{run['tasks_by_worker']} (load average {run['load_average']})")
    machine_info = report["machine"]
    print(f"settle_month median {report['settle_month_median_seconds']} s for {fleet:,} units "
          f"(aim: under 5 s); the plain loop takes {report['plain_over_settle_median']}x as "
          f"long (aim: 10x; median of per-round ratios; "
          f"{report['plain_cpu_over_settle_cpu_median']}x in Python CPU); 2 workers are "
          f"{report['two_workers_speedup_median']}x as fast as 1; machine: "
          f"{machine_info['cpu_model']}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} now.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--seed", type=int, default=20261101, help="random seed of the data")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the settled run")
    parser.add_argument("--keep", action="store_true",
                        help="keep the seeded database (its URL is printed) for --reuse")
    parser.add_argument("--reuse", metavar="URL",
                        help="measure on a database seeded by an earlier run with --keep")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of each measured run (0: only the sizes)")
    parser.add_argument("--reference", action="store_true",
                        help="also time the row-by-row reference (tests/settlement/reference.py)")
    parser.add_argument("--redis-url", default=os.environ.get(
        "BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"), help="broker of the Celery runs")
    parser.add_argument("--seed-only", action="store_true",
                        help="seed a database, keep it and stop (measure it later with --reuse)")
    parser.add_argument("--no-celery", dest="celery", action="store_false",
                        help="skip the Celery runs (1 worker against 2)")
    parser.add_argument("--issued-units", type=int, default=100,
                        help="units whose dispatches go through issue_dispatch (the others "
                             "are checked by the same service and written in bulk)")
    parser.add_argument("--size-rounds", type=int, default=1,
                        help="interleaved rounds of settling 100, 1,000 and all units")
    parser.add_argument("--no-bulk", dest="bulk", action="store_false",
                        help="onboard every unit through onboard_fsp and check every "
                             "dispatch through check_issue (slow beyond 1,000 units)")
    parser.add_argument("--check-seed", action="store_true",
                        help="seed --units both ways and compare the rows (use 20 units)")
    parser.add_argument("--dump-rows", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("settle", "plain", "reference"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--contracts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("settlement benchmark needs PostgreSQL: --database-url postgres://...")

    if args.check_seed:
        check_seed(args)
        return
    workdir = Path(tempfile.mkdtemp(prefix="vtn-bench-"))
    if args.reuse:
        database_url, drop_database = args.reuse, lambda: None
    else:
        database_url, drop_database, _ = create_database(args.database_url, workdir)
        if args.keep or args.seed_only:
            print(f"seeded database (kept): {database_url}", file=sys.stderr)
            drop_database = lambda: None  # noqa: E731
    os.environ.update({"DATABASE_URL": database_url, "VTN_VAR_DIR": str(workdir),
                       "SECRET_KEY": secrets.token_urlsafe(32), "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "config.settings"})
    try:
        import django
        from django.core.management import call_command
        from django.db import connection

        django.setup()
        if args.reuse:
            data = seeded(args.units)
        else:
            started = time.monotonic()
            call_command("migrate", verbosity=0)
            migrated = time.monotonic() - started
            data = seed(args.units, args.seed, args.issued_units, args.bulk)
            data["seconds"]["migrate"] = round(migrated, 1)
        if args.dump_rows:
            print(json.dumps(seed_rows()))
            return

        if args.seed_only:
            print(json.dumps({"database_url": database_url, **data}, default=str))
            return
        if args.child:
            contracts = [int(pk) for pk in args.contracts.split(",")]
            print(json.dumps(child(args.child, contracts, data["since"], data["after"])))
            return
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.runcall(settle_all, data["contracts"][:FLEET_UNITS // UNITS_PER_FSP])
            profiler.dump_stats(args.profile)
        connection.close()
        report = measure(args, database_url, data)
        print(json.dumps(report, indent=2))
        summarise(report, data)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database()


if __name__ == "__main__":
    main()
