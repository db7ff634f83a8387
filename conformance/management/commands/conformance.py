"""``manage.py conformance``: run the conformance scenarios against a site's VEN, list runs.

    conformance run --fsp [OP/]NAME [--site SITE] [--scenario NAME|all] [--poll-interval S]
                    [--margin S] [--deadline S] [--heartbeat-interval S] [--fault-seconds S]
                    [--retry-after S] [--metering-deadline S] [--push-within S]
                    [--out DIR]
    conformance list [--fsp [OP/]NAME]
    conformance show RUN_ID [--html]

``run`` is synchronous: progress (and what the FSP must do, for ``metering``) goes to
stderr, the report summary as JSON to stdout, report.json and report.html to ``--out``;
the exit code is 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conformance import report as reports
from conformance import runner
from conformance.models import ConformanceRun
from conformance.scenarios import ORDER, Options
from dispatch.models import FspSite


class Command(BaseCommand):
    help = "Run the conformance scenarios against an FSP site's VEN; list and show runs."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="run scenarios now (synchronously)")
        run.add_argument("--fsp", required=True, help="FSP identifier, or OPERATOR/FSP")
        run.add_argument("--site", help="site name (default: the FSP's only site)")
        run.add_argument("--scenario", default="all",
                         help=f"all, or one or more of {', '.join(ORDER)} (comma-separated)")
        run.add_argument("--poll-interval", type=float, default=10.0, dest="poll_interval_s",
                         help="the VEN's poll interval in seconds (sets the deadlines)")
        run.add_argument("--margin", type=float, default=5.0, dest="margin_s")
        run.add_argument("--deadline", type=float, dest="deadline_s",
                         help="acknowledgement deadline (default 2 x poll interval + margin)")
        run.add_argument("--heartbeat-interval", type=float, dest="heartbeat_interval_s",
                         help="default: the shortest heartbeat interval of the site's products")
        run.add_argument("--fault-seconds", type=float, dest="fault_s")
        run.add_argument("--retry-after", type=int, default=5, dest="retry_after_s")
        run.add_argument("--metering-deadline", type=float, default=120.0,
                         dest="metering_deadline_s")
        run.add_argument("--push-within", type=float, dest="push_within_s",
                         help="mqtt: a woken VEN acknowledges within this (default 2 s)")
        run.add_argument("--program-refresh", type=float, dest="program_refresh_s",
                         help="parameter-change: how often the VEN re-reads the programs "
                              "(default 60 s, the reference agent's)")
        run.add_argument("--changed-heartbeat", type=float, dest="changed_heartbeat_s",
                         help="parameter-change: the heartbeat interval it sets (default 30 s, "
                              "at most half the product's, at least 10 s)")
        run.add_argument("--out", type=Path, help="directory for report.json and report.html")
        listing = sub.add_parser("list", help="runs as JSON, newest first")
        listing.add_argument("--fsp")
        show = sub.add_parser("show", help="a run's report (JSON, or HTML with --html)")
        show.add_argument("run_id")
        show.add_argument("--html", action="store_true")

    def handle(self, *args, action: str, **options) -> None:
        if action == "run":
            code = self._run(options)
            if code:
                sys.exit(code)
        elif action == "list":
            self._list(options.get("fsp"))
        else:
            self._show(options["run_id"], options["html"])

    def _site(self, fsp: str, site: str | None) -> FspSite:
        operator, _, identifier = fsp.rpartition("/")
        sites = FspSite.objects.select_related("fsp__operator", "ven").filter(
            fsp__identifier=identifier,
            fsp__operator__code=operator or settings.CONFORMANCE_OPERATOR)
        if site:
            sites = sites.filter(name=site)
        found = list(sites[:2])
        if len(found) != 1:
            raise CommandError(f"{'no' if not found else 'more than one'} site of FSP {fsp}"
                               + (f" named {site}" if site else "") +
                               ("" if found else "; give --fsp OPERATOR/FSP") +
                               ("" if len(found) < 2 else "; give --site"))
        return found[0]

    def _run(self, options: dict) -> int:
        site = self._site(options["fsp"], options.get("site"))
        run_options = Options(**{name: options[name] for name in (
            "poll_interval_s", "margin_s", "deadline_s", "heartbeat_interval_s", "fault_s",
            "retry_after_s", "metering_deadline_s", "push_within_s",
            "program_refresh_s", "changed_heartbeat_s")
            if options.get(name) is not None})
        try:
            run = runner.create_run(site=site, scenario=options["scenario"],
                                    options=run_options, requested_by="cli")
        except runner.RunError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"conformance run {run.pk} for {site}: {', '.join(run.scenarios)}")
        def log(message: str) -> None:
            self.stderr.write(message)
            self.stderr.flush()

        run = runner.execute(run, log=log)
        report = run.report
        assert report is not None, "execute() always stores the run's report"
        out = options.get("out")
        if out:
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(reports.to_json(report))
            (out / "report.html").write_text(reports.to_html(report))
        self.stdout.write(json.dumps({
            "run": str(run.pk), "status": run.status, "passed": report["passed"],
            "flags": report.get("flags", []),
            "summary": report["summary"], "error": run.error or None,
            "failed": [f"{s['name']}/{c['name']}: {c['observed']}"
                       for s in report["scenarios"] for c in s["checks"]
                       if not c["passed"]],
            "out": str(out) if out else None}, indent=2))
        return 0 if run.status == ConformanceRun.Status.PASSED else 1

    def _list(self, fsp: str | None) -> None:
        runs = ConformanceRun.objects.select_related("site__fsp__operator")
        if fsp:
            operator, _, identifier = fsp.rpartition("/")
            runs = runs.filter(site__fsp__identifier=identifier)
            if operator:
                runs = runs.filter(site__fsp__operator__code=operator)
        self.stdout.write(json.dumps([{
            "id": str(r.pk), "status": r.status, "operator": r.site.fsp.operator.code,
            "fsp": r.site.fsp.identifier, "site": r.site.name, "scenarios": r.scenarios,
            "requestedBy": r.requested_by, "created": r.created.isoformat(),
            "finished": r.finished.isoformat() if r.finished else None,
            "summary": (r.report or {}).get("summary")} for r in runs[:200]], indent=2))

    def _show(self, run_id: str, html: bool) -> None:
        try:
            run = ConformanceRun.objects.get(pk=run_id)
        except (ConformanceRun.DoesNotExist, ValueError, Exception) as exc:
            raise CommandError(f"no run {run_id}") from exc
        if not run.report:
            raise CommandError(f"run {run_id} is {run.status}; no report yet")
        self.stdout.write(reports.to_html(run.report) if html else reports.to_json(run.report))
