"""The conformance report: a stable JSON document (to archive) and its HTML rendering
(to read). Structure (``format`` ``gb-conformance-report/1``, docs/conformance.md):

``{format, profile, runID, status, passed, flags: [{name, detail, reasons}], operator, fsp,
site, venName, clientID, started, finished, options, summary: {scenarios, checks, passed,
failed, notApplicable}, error, scenarios: [{name, title, description, started, finished,
passed, notApplicable, error, facts, checks: [{name, passed, expected, observed,
evidence}]}]}``

A scenario the sandbox cannot drive because the VEN does not use what it grades (a push
binding) has ``notApplicable`` (the reason, else "") and no checks; it does not fail the
run.

``flags`` name what a reader must know even when every check passed (today:
``all-actioned-failed``, every ACTIONED acknowledgement of the run said FAILED).
"""

from __future__ import annotations

import json

from django.template.loader import render_to_string

from conformance.checks import iso

FORMAT = "gb-conformance-report/1"
PROFILE = "gb-dispatch/1"


def build(run, site, options, results, *, flags: list[dict] | None = None) -> dict:
    scenarios = [{
        "name": r.name, "title": r.title, "description": r.description,
        "started": iso(r.started), "finished": iso(r.finished), "passed": r.passed,
        "notApplicable": r.not_applicable, "error": r.error, "facts": r.facts,
        "checks": [c.as_dict() for c in r.checks],
    } for r in results]
    all_checks = [c for s in scenarios for c in s["checks"]]
    passed = run.status == "passed"
    return {
        "format": FORMAT, "profile": PROFILE, "runID": str(run.pk), "status": run.status,
        "passed": passed, "flags": list(flags or []), "operator": site.fsp.operator.code,
        "fsp": site.fsp.identifier,
        "site": site.name, "venName": site.ven.ven_name, "clientID": site.ven.client_id,
        "started": iso(run.started), "finished": iso(run.finished),
        "options": options.as_report(),
        "summary": {"scenarios": len(scenarios), "checks": len(all_checks),
                    "passed": sum(1 for c in all_checks if c["passed"]),
                    "failed": sum(1 for c in all_checks if not c["passed"]),
                    "notApplicable": sum(1 for s in scenarios if s["notApplicable"])},
        "error": run.error, "scenarios": scenarios,
    }


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def to_html(report: dict) -> str:
    """A self-contained page (inline styles, no scripts, no external resources)."""
    scenarios = [dict(s, checks=[dict(c, evidence_json=json.dumps(c["evidence"], indent=2))
                                 for c in s["checks"]]) for s in report.get("scenarios", [])]
    return render_to_string("conformance/report.html", {
        "report": report, "scenarios": scenarios,
        "options_json": json.dumps(report.get("options", {}), indent=2)})
