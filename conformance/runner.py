"""Conformance runs: create one for a site, execute its scenarios, store the report.

:func:`execute` runs synchronously (the CLI); :func:`start_in_background` runs it in a
thread of the web process once the creating transaction has committed, so the API answers
202 at once (docs/conformance.md: a run lasts minutes; a restarted web process leaves
its run ``running``, and :func:`abandon_stale` marks such runs ``error``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from conformance import checks, evidence
from conformance import report as reports
from conformance.models import ConformanceRun
from conformance.scenarios import (
    ORDER,
    SCENARIOS,
    Context,
    HeardSampler,
    Options,
    retrying,
    run_scenario,
)
from dispatch.models import FspSite

logger = logging.getLogger(__name__)
STALE_AFTER = timedelta(hours=2)


class RunError(ValueError):
    """The run cannot be created as asked (unknown scenario, site without units, ...)."""


def scenario_names(scenario: str) -> list[str]:
    if scenario in ("", "all"):
        return list(ORDER)
    names = [name.strip() for name in scenario.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise RunError(f"unknown scenario {', '.join(unknown) or scenario!r}; use all or "
                       f"{', '.join(ORDER)}")
    return names


def create_run(*, site: FspSite, scenario: str = "all", options: Options | None = None,
               requested_by: str = "") -> ConformanceRun:
    names = scenario_names(scenario)
    if not site.units.exists():
        raise RunError(f"site {site} has no dispatch units")
    active = ConformanceRun.objects.filter(site=site, status__in=(
        ConformanceRun.Status.PENDING, ConformanceRun.Status.RUNNING))
    abandon_stale()
    running = active.first()
    if running is not None:
        raise RunError(f"site {site} already has a run in progress ({running.pk})")
    return ConformanceRun.objects.create(site=site, scenarios=names,
                                         options=(options or Options()).as_dict(),
                                         requested_by=requested_by)


def abandon_stale(now=None) -> int:
    """Runs still pending or running long after they started died with their process."""
    now = now or timezone.now()
    return ConformanceRun.objects.filter(
        status__in=(ConformanceRun.Status.PENDING, ConformanceRun.Status.RUNNING),
        created__lt=now - STALE_AFTER).update(
        status=ConformanceRun.Status.ERROR, finished=now,
        error="the run did not finish (its process stopped)")


def execute(run: ConformanceRun, *, log: Callable[[str], None] | None = None,
            sample: bool = True) -> ConformanceRun:
    """Run every scenario of ``run`` in order, then store the report and the status.
    ``sample``: watch the site's last-seen time in a thread (heartbeat evidence)."""
    run.status = ConformanceRun.Status.RUNNING
    run.started = timezone.now()
    retrying(lambda: run.save(update_fields=["status", "started"]))
    site = FspSite.objects.select_related("fsp__operator", "ven").get(pk=run.site_id)
    options = Options.from_dict(run.options)
    sampler = HeardSampler(site) if sample else None
    if sampler:
        sampler.start()
    results = []
    flags: list[dict] = []
    try:
        ctx = Context(site=site, options=options, run=run, sampler=sampler, log=log)
        for name in run.scenarios:
            run.current_scenario = name
            retrying(lambda: run.save(update_fields=["current_scenario"]))
            results.append(run_scenario(name, ctx))
        acks = [a for d in ctx.dispatches for a in evidence.acknowledgements(d)]
        flags = [flag for flag in (checks.all_actioned_failed(acks),) if flag]
        status = ConformanceRun.Status.PASSED if all(r.passed for r in results) \
            else ConformanceRun.Status.FAILED
        error = ""
    except Exception as exc:
        logger.exception("conformance run %s failed", run.pk)
        status, error = ConformanceRun.Status.ERROR, f"{type(exc).__name__}: {exc}"
    finally:
        if sampler:
            sampler.stop()
    run.finished = timezone.now()
    run.status = status
    run.error = error
    run.current_scenario = ""
    run.awaiting = None
    run.report = reports.build(run, site, options, results, flags=flags)
    retrying(run.save)
    return run


def _execute_in_thread(run_id) -> None:
    try:
        run = ConformanceRun.objects.get(pk=run_id)
        execute(run)
    except Exception:
        logger.exception("conformance run %s crashed", run_id)
    finally:
        connection.close()


def start_in_background(run: ConformanceRun) -> None:
    transaction.on_commit(lambda: threading.Thread(
        target=_execute_in_thread, args=(run.pk,), name=f"conformance-{run.pk}",
        daemon=True).start())
