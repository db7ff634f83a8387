"""Signed availability declarations and meter readings: the VTN verifies the site's
signature before it writes the report, stores it with the intake, refuses a bad one with a
problem (changing nothing), refuses unsigned reports from sites with a key unless the
operator allows them for a transition, and puts every intake in the audit chain."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from dispatch.models import (
    AuditEntry,
    AvailabilityDeclaration,
    MeterReading,
    NetworkOperator,
    ReportIntake,
)
from gbflex_profile import audit_chain, jose, report_signing
from tests.dispatch.test_dispatch_acks import FspAgent
from tests.dispatch.test_dispatch_api import Api
from tests.dispatch.test_dispatch_audit import export_file, verify_offline
from tests.dispatch.test_dispatch_metering import half_hours
from tests.fixtures.dispatch import hour, timing
from vtn.models import Report

pytestmark = pytest.mark.django_db
PAST = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


def z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def declarations(start: datetime, kw: float = 450) -> list[dict]:
    return [{"resourceName": "bat1", "intervals": [
        {"id": 0, "intervalPeriod": {"start": z(start), "duration": "PT4H"},
         "payloads": [{"type": "GB_AVAILABLE_KW", "values": [kw]}]}]}]


class Reporter:
    """The acme site's VEN posting availability and metering reports."""

    def __init__(self, site, capture):
        self.site = site
        self.capture = capture

    def body(self, kind: str, resources: list[dict], *, signer: FspAgent | None = None,
             descriptors: list[dict] | None = None) -> dict:
        body = {"eventID": self.site.onboarding[f"{kind}_event_id"], "clientName": "agent",
                "reportName": kind, "resources": resources}
        if descriptors is not None:
            body["payloadDescriptors"] = descriptors
        if signer is not None:
            body = report_signing.sign_report(body, kind=kind.upper(), fsp="acme",
                                              key=signer.key, kid=signer.kid)
        return body

    def post(self, body: dict):
        with self.capture(execute=True):
            return self.site.api("3.1.0").post("/reports", body)


@pytest.fixture
def reporter(gb, django_capture_on_commit_callbacks) -> Reporter:
    return Reporter(gb.acme, django_capture_on_commit_callbacks)


@pytest.fixture
def agent(gb) -> FspAgent:
    fsp_agent = FspAgent(gb.acme)
    assert fsp_agent.register()[0] == 201
    return fsp_agent


def nothing_written(before: dict) -> bool:
    return before == counts()


def counts() -> dict:
    return {"reports": Report.objects.count(), "intakes": ReportIntake.objects.count(),
            "declarations": AvailabilityDeclaration.objects.count(),
            "readings": MeterReading.objects.count(), "audit": AuditEntry.objects.count()}


def test_a_signed_declaration_is_stored_with_its_signature_and_audited(reporter, agent):
    body = reporter.body("availability", declarations(hour(3)), signer=agent)
    reply = reporter.post(body)
    assert reply.status == 201, reply.json
    intake = ReportIntake.objects.get(report_id=reply.json["id"])
    assert intake.stored == 1 and intake.rejected == 0  # the signature is not a unit
    assert intake.kid == agent.kid and intake.jws == body["resources"][-1]["intervals"][0][
        "payloads"][0]["values"][0]
    assert intake.signed["kind"] == "AVAILABILITY" and intake.signed["resources"] == \
        declarations(hour(3))
    assert abs((intake.signed_at - intake.received_at).total_seconds()) < 60
    entry = AuditEntry.objects.get(kind="declarations_recorded")
    assert entry.jws == intake.jws and entry.payload["signed"] == intake.signed
    assert entry.subject == {"networkOperatorId": "ENWL", "fsp": "acme", "site": "north",
                             "intakeId": intake.pk, "kid": agent.kid}
    assert entry.dispatch_ref == "" and entry.payload["stored"] == 1


def test_signed_readings_are_stored_with_their_signature_and_audited(reporter, agent):
    resources = [{"resourceName": "bat1", "intervals": half_hours(PAST, [-120.5, -130])}]
    descriptors = [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE",
                    "readingType": "DIRECT_READ", "units": "WH"}]
    reply = reporter.post(reporter.body("metering", resources, signer=agent,
                                        descriptors=descriptors))
    assert reply.status == 201, reply.json
    intake = ReportIntake.objects.get(report_id=reply.json["id"])
    assert (intake.stored, intake.rejected, intake.kid) == (2, 0, agent.kid)
    assert intake.signed["payloadDescriptors"] == [
        {"payloadType": "USAGE", "readingType": "DIRECT_READ", "units": "WH"}]
    entry = AuditEntry.objects.get(kind="readings_recorded")
    assert entry.payload["signed"]["resources"] == resources
    status, found, _ = Api(reporter.site.token).get("/report-intakes",
                                                    {"report": reply.json["id"]})
    assert status == 200 and found[0]["signed"] is True and found[0]["kid"] == agent.kid
    assert found[0]["signedAt"].endswith("Z")


@pytest.mark.parametrize("kind", ["availability", "metering"])
def test_a_report_changed_after_signing_is_refused_and_changes_nothing(reporter, agent,
                                                                        kind):
    resources = declarations(hour(3)) if kind == "availability" else [
        {"resourceName": "bat1", "intervals": half_hours(PAST, [10, 12])}]
    body = copy.deepcopy(reporter.body(kind, resources, signer=agent))
    body["resources"][0]["intervals"][0]["payloads"][0]["values"] = [9999]
    before = counts()
    reply = reporter.post(body)
    assert reply.status == 400, reply.json
    assert (reply.json["status"], reply.json["title"]) == (400, "Bad Request")
    assert "signature was refused: the signed resources differ" in reply.json["detail"]
    assert nothing_written(before)


def test_a_signature_by_a_key_the_site_never_registered_is_refused(reporter, agent, gb):
    stranger = FspAgent(gb.acme, kid="not-registered")
    before = counts()
    reply = reporter.post(reporter.body("availability", declarations(hour(3)),
                                        signer=stranger))
    assert reply.status == 400 and "not a registered" in reply.json["detail"], reply.json
    assert nothing_written(before)


def test_a_signature_by_a_revoked_key_is_refused(reporter, agent, gb):
    status, _, _ = Api(gb.acme.token).post(f"/site-keys/{agent.kid}/revoke", {})
    assert status == 200
    reply = reporter.post(reporter.body("availability", declarations(hour(3)), signer=agent))
    assert reply.status == 400 and "unrevoked" in reply.json["detail"], reply.json


def test_a_signature_for_the_metering_event_is_refused_on_the_availability_event(
        reporter, agent):
    body = reporter.body("availability", declarations(hour(3)))
    signed = report_signing.sign_report(body, kind="METERING", fsp="acme", key=agent.key,
                                        kid=agent.kid)
    reply = reporter.post(signed)
    assert reply.status == 400 and "METERING report" in reply.json["detail"], reply.json


def test_an_unsigned_report_from_a_site_with_a_key_is_refused_by_default(reporter, agent):
    assert NetworkOperator.objects.get(code="ENWL").require_signed_reports is True
    before = counts()
    reply = reporter.post(reporter.body("availability", declarations(hour(3))))
    assert reply.status == 400, reply.json
    assert "must be signed" in reply.json["detail"]
    assert reply.response["Content-Type"].startswith("application/")
    assert nothing_written(before)


def test_an_unsigned_report_from_a_site_without_a_key_is_taken(reporter):
    reply = reporter.post(reporter.body("availability", declarations(hour(3))))
    assert reply.status == 201, reply.json
    intake = ReportIntake.objects.get(report_id=reply.json["id"])
    assert (intake.stored, intake.jws, intake.signed) == (1, "", None)
    entry = AuditEntry.objects.get(kind="declarations_recorded")
    assert entry.jws == "" and entry.payload["signed"] is None


def signed_reports(*args: str) -> dict:
    out = StringIO()
    call_command("dispatch", "signed-reports", "--operator", "ENWL", *args, stdout=out)
    return json.loads(out.getvalue())


def test_the_operator_allows_unsigned_reports_for_a_transition_and_it_is_audited(
        reporter, agent):
    assert signed_reports() == {"operator": "ENWL", "requireSignedReports": True}
    assert signed_reports("--allow-unsigned", "--reason", "agents upgrading") == {
        "operator": "ENWL", "requireSignedReports": False}
    change = AuditEntry.objects.get(kind="signed_reports_changed")
    assert change.payload == {"requireSignedReports": {"before": True, "after": False},
                              "changedBy": "cli", "reason": "agents upgrading"}
    assert signed_reports("--allow-unsigned")["requireSignedReports"] is False
    assert AuditEntry.objects.filter(kind="signed_reports_changed").count() == 1  # no change

    reply = reporter.post(reporter.body("availability", declarations(hour(3))))
    assert reply.status == 201, reply.json
    # a signature that is there must still verify during the transition
    body = copy.deepcopy(reporter.body("availability", declarations(hour(4)), signer=agent))
    body["resources"][0]["intervals"][0]["payloads"][0]["values"] = [1]
    assert reporter.post(body).status == 400

    signed_reports("--require")
    assert AuditEntry.objects.filter(kind="signed_reports_changed").count() == 2
    assert reporter.post(reporter.body("availability", declarations(hour(5)))).status == 400


def test_an_unknown_operator_is_a_command_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("dispatch", "signed-reports", "--operator", "XXXX", "--require",
                     stdout=StringIO())


def test_the_dispatch_audit_export_carries_the_declarations_and_readings_and_verifies(
        reporter, agent, issue, gb, tmp_path):
    start = hour(2)
    # declared before the dispatch, for a window overlapping it; another unit's is left out
    assert reporter.post(reporter.body("availability", declarations(start - timedelta(
        hours=1), kw=300), signer=agent)).status == 201
    hp1 = [{"resourceName": "hp1", "intervals": declarations(start)[0]["intervals"]}]
    assert reporter.post(reporter.body("availability", hp1, signer=agent)).status == 201
    dispatch = issue(reference="DECL-1", service_start=start,
                     timings=[timing(start, 250)])
    out = export_file(tmp_path, "DECL-1")
    document = json.loads(out.read_text())
    kinds = [e["kind"] for e in document["entries"]]
    assert kinds == ["declarations_recorded", "revision_issued"], kinds
    assert document["site"] == {"fsp": "acme", "site": "north"}
    assert document["entries"][0]["payload"]["signed"]["resources"][0]["resourceName"] == "bat1"
    checked = verify_offline(out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert dispatch.reference in checked.stdout


@pytest.mark.parametrize("tamper", ["signed", "jws", "site"])
def test_a_tampered_declaration_in_an_export_fails_offline(reporter, agent, issue, tmp_path,
                                                           tamper):
    start = hour(2)
    assert reporter.post(reporter.body("availability", declarations(start, kw=300),
                                       signer=agent)).status == 201
    issue(reference="DECL-2", service_start=start, timings=[timing(start, 250)])
    document = json.loads(export_file(tmp_path, "DECL-2").read_text())
    entry = document["entries"][0]
    assert entry["kind"] == "declarations_recorded"
    if tamper == "signed":  # a higher declaration than was signed; the hashes recomputed
        entry["payload"]["signed"]["resources"][0]["intervals"][0]["payloads"][0][
            "values"] = [900]
    elif tamper == "jws":
        entry["jws"] = ""
    else:
        entry["subject"]["site"] = "south"
    problems = audit_chain.verify_export(document)
    assert problems, "the tampered export verified"
    rehashed = _rehash(document)
    assert audit_chain.verify_export(rehashed), "a re-hashed tampered export verified"
    path = Path(tmp_path / "tampered.json")
    path.write_text(json.dumps(rehashed))
    assert verify_offline(path).returncode == 1


def _rehash(document: dict) -> dict:
    """The export with every hash recomputed, as a forger would: only signatures and the
    site's identity can then give the tampering away."""
    document = copy.deepcopy(document)
    previous = None
    by_sequence = {e["sequence"]: e for e in document["entries"]}
    for link in document["links"]:
        entry = by_sequence.get(link["sequence"])
        if previous is not None:
            link["prevHash"] = previous
        if entry is not None:
            entry["prevHash"] = link["prevHash"]
            link["bodyHash"] = audit_chain.body_hash(entry)
            entry["hash"] = link["hash"] = audit_chain.entry_hash(entry, link["prevHash"])
        else:
            link["hash"] = audit_chain.link_hash(link["sequence"], link["prevHash"],
                                                 link["bodyHash"])
        previous = link["hash"]
    document["headHash"] = previous
    return document


def test_an_acknowledgement_records_when_the_fsp_signed_it(gb, issue,
                                                            django_capture_on_commit_callbacks):
    from gbflex_profile import acks

    site = FspAgent(gb.acme)
    assert site.register()[0] == 201
    dispatch = issue(reference="ACK-T")
    revision = dispatch.revisions.get()
    signed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    payloads = acks.ack_payloads(acks.read_back(revision.document, stage="RECEIVED"),
                                 site.key, site.kid, signed_at=signed_at)
    body = {"eventID": dispatch.event_id, "clientName": "acme-agent", "reportName": "ack",
            "resources": [{"resourceName": "bat1", "intervals": [{"id": 0,
                                                                  "payloads": payloads}]}]}
    with django_capture_on_commit_callbacks(execute=True):
        assert gb.acme.api("3.1.0").post("/reports", body).status == 201
    ack = revision.acknowledgements.get()
    assert (ack.outcome, ack.signed_at) == ("accepted", signed_at)
    entry = AuditEntry.objects.get(kind="ack_recorded")
    assert entry.payload["signed"]["signedAt"] == report_signing.utc_text(signed_at)
    assert jose.verify(entry.jws, {"keys": [jose.public_jwk(site.key, site.kid)]})[
        "signedAt"] == report_signing.utc_text(signed_at)


def test_no_unit_may_take_the_name_of_the_signature_resource(gb):
    from dispatch import onboarding, registry
    from vtn.errors import BadRequest

    with pytest.raises(BadRequest, match="reserved"):
        onboarding.onboard_fsp(operator="ENWL", fsp="acme", site="east", units=[
            registry.parse_unit_spec("GB_REPORT_SIGNATURE:100")])
