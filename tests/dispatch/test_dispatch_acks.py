"""Acknowledgements: FSP site keys registered through the API, acknowledgement reports on
the dispatch's event checked for signature and read-back, every outcome recorded."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from dispatch.models import Acknowledgement, AuditEntry, SiteSigningKey
from gbflex_profile import acks, jose
from tests.dispatch.test_dispatch_api import Api

pytestmark = pytest.mark.django_db
Outcome = Acknowledgement.Outcome


class FspAgent:
    """An FSP site's agent: its own Ed25519 key, and the reports it sends."""

    def __init__(self, site, kid: str = "acme-north-1"):
        self.site = site
        self.kid = kid
        self.key = jose.generate_private_key()
        self.api = site.api("3.1.0")

    def jwk(self) -> dict:
        public = jose.public_jwk(self.key, self.kid)
        return {name: public[name] for name in ("kty", "crv", "x", "kid")}

    def register(self) -> tuple[int, object]:
        status, body, _ = Api(self.site.token).post("/site-keys", {"jwk": self.jwk()})
        return status, body

    def read_back(self, issued, *, stage: str = "RECEIVED", outcome: str = "",
                  reason: str = "", **changes) -> dict:
        """What the agent understood of revision ``issued``, as it signs it."""
        expected = acks.expected_read_back(issued.document)
        return acks.claim_document(
            stage=stage, status=expected["status"], dispatch_ref=expected["dispatchRef"],
            fsp=expected["fspId"], unit=expected["dispatchUnit"],
            revision=expected["revision"], setpoints=expected["setpoints"],
            outcome=outcome, reason=reason) | changes

    def report(self, dispatch, documents: list[dict], *, token: str | None = None,
               key=None, kid: str | None = None, capture=None) -> list[Acknowledgement]:
        """Post one report on the dispatch's event with one interval per document."""
        intervals = []
        for index, document in enumerate(documents):
            jws = token if token is not None else jose.sign(
                document, key or self.key, kid or self.kid)
            intervals.append({"id": index, "payloads": acks.payloads_for(document, jws)})
        before = set(Acknowledgement.objects.values_list("id", flat=True))
        body = {"eventID": dispatch.event_id, "clientName": "acme-agent",
                "reportName": "ack", "resources": [{"resourceName": dispatch.unit.reference,
                                                    "intervals": intervals}]}
        with capture(execute=True):
            reply = self.api.post("/reports", body)
        assert reply.status == 201, reply.json
        return list(Acknowledgement.objects.exclude(id__in=before).order_by("id"))


@pytest.fixture
def agent(gb) -> FspAgent:
    fsp_agent = FspAgent(gb.acme)
    status, body = fsp_agent.register()
    assert status == 201, body
    return fsp_agent


def only(recorded: list[Acknowledgement]) -> Acknowledgement:
    assert len(recorded) == 1, recorded
    return recorded[0]


# --- site keys ------------------------------------------------------------------------------

def test_a_ven_registers_lists_and_revokes_its_own_site_keys(gb, agent):
    key = SiteSigningKey.objects.get()
    assert key.site.name == "north" and key.kid == "acme-north-1"
    assert "d" not in key.public_jwk and key.public_jwk["alg"] == "EdDSA"
    status, listed, _ = Api(gb.acme.token).get("/site-keys")
    assert status == 200 and [k["kid"] for k in listed] == ["acme-north-1"]
    assert listed[0]["site"] == "ENWL/acme/north"
    assert Api(gb.zeta.token).get("/site-keys")[1] == []  # zeta sees none of acme's
    assert agent.register()[0] == 409  # kid taken for this site
    status, revoked, _ = Api(gb.acme.token).post("/site-keys/acme-north-1/revoke", {})
    assert status == 200 and revoked["revokedAt"]


def test_a_ven_cannot_register_keys_for_another_site(gb):
    zeta = FspAgent(gb.zeta, kid="sneaky")
    status, problem, _ = Api(gb.zeta.token).post("/site-keys", {
        "jwk": zeta.jwk(), "fsp": "acme", "site": "north"})
    assert status == 403, problem
    status, problem, _ = Api(gb.zeta.token).post("/site-keys", {
        "jwk": zeta.jwk(), "site": "north"})
    assert status == 403
    assert not SiteSigningKey.objects.exists()
    assert Api(gb.zeta.token).post("/site-keys/acme-north-1/revoke", {})[0] == 404


def test_site_key_registration_refuses_bad_keys_and_non_ven_callers(gb):
    from tests.fixtures.api import new_actor

    agent = FspAgent(gb.acme)
    with_private = jose.public_jwk(agent.key, "k1") | {"d": "AAAA"}
    api = Api(gb.acme.token)
    assert api.post("/site-keys", {"jwk": with_private})[0] == 400
    assert api.post("/site-keys", {"jwk": agent.jwk() | {"crv": "P-256"}})[0] == 400
    assert api.post("/site-keys", {"jwk": agent.jwk() | {"x": "c2hvcnQ"}})[0] == 400
    operator = Api(new_actor("operator", "bl", "3.1.0").token)
    assert operator.post("/site-keys", {"jwk": agent.jwk()})[0] == 403


# --- acknowledgements -----------------------------------------------------------------------

def test_both_stages_are_accepted_and_shown_to_the_operator(
        issue, agent, django_capture_on_commit_callbacks):
    dispatch = issue(reference="ACK-1")
    revision = dispatch.revisions.get()
    received = only(agent.report(dispatch, [agent.read_back(revision)],
                                 capture=django_capture_on_commit_callbacks))
    assert (received.stage, received.outcome, received.revision) == (
        "received", Outcome.ACCEPTED, revision)
    actioned = only(agent.report(
        dispatch, [agent.read_back(revision, stage="ACTIONED", outcome="ACCEPTED")],
        capture=django_capture_on_commit_callbacks))
    assert actioned.stage == "actioned" and actioned.outcome == Outcome.ACCEPTED
    assert actioned.result == "ACCEPTED" and actioned.kid == "acme-north-1"
    assert jose.verify(actioned.jws, {"keys": [SiteSigningKey.objects.get().public_jwk]}) \
        == actioned.read_back

    from tests.fixtures.api import new_actor

    status, shown, _ = Api(new_actor("operator", "bl", "3.1.0").token).get(
        "/dispatches/ENWL/ACK-1")
    assert status == 200
    current = shown["current"]
    assert current["acknowledged"]["received"] and current["acknowledged"]["actioned"]
    assert current["acknowledged"]["actionedResult"] == "ACCEPTED"
    assert [(a["stage"], a["outcome"]) for a in current["acknowledgements"]] == [
        ("received", "accepted"), ("actioned", "accepted")]
    out = StringIO()
    call_command("dispatch", "show", "ACK-1", stdout=out)
    cli = json.loads(out.getvalue())
    assert [a["outcome"] for a in cli["revisions"][0]["acknowledgements"]] == [
        "accepted", "accepted"]


def test_an_actioned_failure_carries_its_reason(issue, agent,
                                                django_capture_on_commit_callbacks):
    dispatch = issue()
    revision = dispatch.revisions.get()
    ack = only(agent.report(dispatch, [agent.read_back(
        revision, stage="ACTIONED", outcome="FAILED", reason="inverter fault")],
        capture=django_capture_on_commit_callbacks))
    assert ack.outcome == Outcome.ACCEPTED and ack.result == "FAILED"
    assert ack.reason == "inverter fault"


def test_a_wrong_read_back_is_recorded_as_a_mismatch(issue, agent,
                                                     django_capture_on_commit_callbacks):
    dispatch = issue()
    revision = dispatch.revisions.get()
    wrong = agent.read_back(revision)
    wrong["setpoints"] = [dict(wrong["setpoints"][0], volume=999), *wrong["setpoints"][1:]]
    ack = only(agent.report(dispatch, [wrong], capture=django_capture_on_commit_callbacks))
    assert ack.outcome == Outcome.READ_BACK_MISMATCH and "setpoints" in ack.detail
    status = only(agent.report(dispatch, [agent.read_back(revision, status="STOP")],
                               capture=django_capture_on_commit_callbacks))
    assert status.outcome == Outcome.READ_BACK_MISMATCH and "status" in status.detail
    future = only(agent.report(dispatch, [agent.read_back(revision, revision=7)],
                               capture=django_capture_on_commit_callbacks))
    assert future.outcome == Outcome.READ_BACK_MISMATCH and future.claimed_revision == 7
    assert future.revision == revision


def test_payloads_that_differ_from_what_was_signed_are_a_mismatch(
        issue, agent, django_capture_on_commit_callbacks):
    dispatch = issue()
    revision = dispatch.revisions.get()
    signed = jose.sign(agent.read_back(revision, revision=99), agent.key, agent.kid)
    ack = only(agent.report(dispatch, [agent.read_back(revision)], token=signed,
                            capture=django_capture_on_commit_callbacks))
    assert ack.outcome == Outcome.READ_BACK_MISMATCH and "signed document" in ack.detail


def test_a_bad_signature_is_recorded_as_invalid(issue, agent,
                                                django_capture_on_commit_callbacks):
    dispatch = issue()
    revision = dispatch.revisions.get()
    impostor = jose.generate_private_key()  # signs under the registered kid
    ack = only(agent.report(dispatch, [agent.read_back(revision)], key=impostor,
                            capture=django_capture_on_commit_callbacks))
    assert ack.outcome == Outcome.INVALID_SIGNATURE
    garbage = only(agent.report(dispatch, [agent.read_back(revision)], token="not-a-jws",
                                capture=django_capture_on_commit_callbacks))
    assert garbage.outcome == Outcome.INVALID_SIGNATURE
    assert not Acknowledgement.objects.filter(outcome=Outcome.ACCEPTED).exists()


def test_an_unknown_or_revoked_key_is_recorded_as_unknown(issue, agent, gb,
                                                          django_capture_on_commit_callbacks):
    dispatch = issue()
    revision = dispatch.revisions.get()
    ack = only(agent.report(dispatch, [agent.read_back(revision)],
                            key=jose.generate_private_key(), kid="never-registered",
                            capture=django_capture_on_commit_callbacks))
    assert ack.outcome == Outcome.UNKNOWN_KEY and ack.kid == "never-registered"
    Api(gb.acme.token).post("/site-keys/acme-north-1/revoke", {})
    revoked = only(agent.report(dispatch, [agent.read_back(revision)],
                                capture=django_capture_on_commit_callbacks))
    assert revoked.outcome == Outcome.UNKNOWN_KEY


def test_a_stale_revision_is_recorded_as_stale(issue, agent,
                                               django_capture_on_commit_callbacks):
    from dispatch import issuing

    dispatch = issue()
    first = dispatch.revisions.get()
    second = issuing.revise_dispatch(dispatch=dispatch, urgency="emergency")
    ack = only(agent.report(dispatch, [agent.read_back(first)],
                            capture=django_capture_on_commit_callbacks))
    assert ack.outcome == Outcome.STALE_REVISION and ack.revision == first
    fresh = only(agent.report(dispatch, [agent.read_back(second)],
                              capture=django_capture_on_commit_callbacks))
    assert fresh.outcome == Outcome.ACCEPTED and fresh.revision == second


def test_a_duplicate_is_recorded_as_duplicate(issue, agent,
                                              django_capture_on_commit_callbacks):
    dispatch = issue()
    revision = dispatch.revisions.get()
    document = agent.read_back(revision)
    assert only(agent.report(dispatch, [document], capture=django_capture_on_commit_callbacks)
                ).outcome == Outcome.ACCEPTED
    again = only(agent.report(dispatch, [document], capture=django_capture_on_commit_callbacks))
    assert again.outcome == Outcome.DUPLICATE
    assert revision.acknowledgements.filter(outcome=Outcome.ACCEPTED).count() == 1


def test_a_stop_revision_is_acknowledged_without_setpoints(issue, agent,
                                                           django_capture_on_commit_callbacks):
    from dispatch import issuing

    dispatch = issue()
    stop = issuing.stop_dispatch(dispatch=dispatch)
    document = agent.read_back(stop)
    assert document["setpoints"] == [] and document["status"] == "STOP"
    ack = only(agent.report(dispatch, [document], capture=django_capture_on_commit_callbacks))
    assert ack.outcome == Outcome.ACCEPTED


def test_reports_without_acknowledgements_record_nothing(issue, gb,
                                                         django_capture_on_commit_callbacks):
    dispatch = issue()
    body = {"eventID": dispatch.event_id, "clientName": "acme-agent", "resources": [
        {"resourceName": "bat1", "intervals": [{"id": 0, "payloads": [
            {"type": "USAGE", "values": [1.5]}]}]}]}
    with django_capture_on_commit_callbacks(execute=True):
        assert gb.acme.api("3.1.0").post("/reports", body).status == 201
    assert not Acknowledgement.objects.exists()
    assert AuditEntry.objects.filter(kind="ack_recorded").count() == 0


def test_one_report_may_carry_both_stages(
        issue, agent, django_capture_on_commit_callbacks):
    dispatch = issue()
    revision = dispatch.revisions.get()
    received = agent.read_back(revision)
    actioned = agent.read_back(revision, stage="ACTIONED", outcome="ACCEPTED")
    recorded = agent.report(dispatch, [received, actioned],
                            capture=django_capture_on_commit_callbacks)
    assert [(a.stage, a.outcome) for a in recorded] == [
        ("received", Outcome.ACCEPTED), ("actioned", Outcome.ACCEPTED)]


def test_resending_a_report_records_only_new_intervals(issue, agent,
                                                       django_capture_on_commit_callbacks):
    dispatch = issue()
    revision = dispatch.revisions.get()
    received = agent.read_back(revision)
    token = jose.sign(received, agent.key, agent.kid)
    body = {"eventID": dispatch.event_id, "clientName": "acme-agent", "resources": [
        {"resourceName": "bat1", "intervals": [
            {"id": 0, "payloads": acks.payloads_for(received, token)}]}]}
    with django_capture_on_commit_callbacks(execute=True):
        reply = agent.api.post("/reports", body)
    assert reply.status == 201
    actioned = agent.read_back(revision, stage="ACTIONED", outcome="ACCEPTED")
    body["resources"][0]["intervals"].append({"id": 1, "payloads": acks.payloads_for(
        actioned, jose.sign(actioned, agent.key, agent.kid))})
    with django_capture_on_commit_callbacks(execute=True):
        assert agent.api.put(f"/reports/{reply.json['id']}", body).status == 200
    assert [(a.stage, a.outcome) for a in Acknowledgement.objects.order_by("id")] == [
        ("received", Outcome.ACCEPTED), ("actioned", Outcome.ACCEPTED)]


# --- refusals -----------------------------------------------------------------------------------

def test_a_refusal_is_recorded_with_its_reason_and_shown(
        issue, agent, gb, django_capture_on_commit_callbacks):
    dispatch = issue(reference="REF-1")
    revision = dispatch.revisions.get()
    document = agent.read_back(revision, stage="REFUSED", reason="signature did not verify")
    assert "status" not in document and "setpoints" not in document
    ack = only(agent.report(dispatch, [document], capture=django_capture_on_commit_callbacks))
    assert (ack.stage, ack.outcome, ack.reason) == (
        "refused", Outcome.ACCEPTED, "signature did not verify")
    from tests.fixtures.api import new_actor

    status, shown, _ = Api(new_actor("operator", "bl", "3.1.0").token).get(
        "/dispatches/ENWL/REF-1")
    assert status == 200
    assert shown["current"]["acknowledged"]["refused"] is not None
    assert shown["current"]["acknowledged"]["refusedReason"] == "signature did not verify"
    again = only(agent.report(dispatch, [document], capture=django_capture_on_commit_callbacks))
    assert again.outcome == Outcome.DUPLICATE


def test_a_refusal_needs_a_reason_and_reads_back_no_setpoints(
        issue, agent, django_capture_on_commit_callbacks):
    dispatch = issue()
    revision = dispatch.revisions.get()
    no_reason = agent.read_back(revision, stage="REFUSED")
    ack = only(agent.report(dispatch, [no_reason], capture=django_capture_on_commit_callbacks))
    assert ack.outcome == Outcome.READ_BACK_MISMATCH and "GB_ACK_REASON" in ack.detail
    wrong_unit = agent.read_back(revision, stage="REFUSED", reason="x", dispatchUnit="hp1")
    ack = only(agent.report(dispatch, [wrong_unit], capture=django_capture_on_commit_callbacks))
    assert ack.outcome == Outcome.READ_BACK_MISMATCH and "dispatchUnit" in ack.detail
    unsigned = only(agent.report(dispatch, [agent.read_back(revision, stage="REFUSED",
                                                            reason="x")], token="",
                                 capture=django_capture_on_commit_callbacks))
    assert unsigned.outcome == Outcome.INVALID_SIGNATURE
