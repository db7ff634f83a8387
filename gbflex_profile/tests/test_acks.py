"""Acknowledgement documents: what the agent signs is what the VTN reads back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gbflex_profile import acks, jose

REVISION = {
    "profile": "gb-dispatch/1", "networkOperatorId": "ENWL", "dispatchRef": "ENWL-0042",
    "revision": 2, "fspId": "acme", "dispatchUnit": "bat1", "contractId": "C-1",
    "product": "DYNAMIC", "status": "RUN", "urgency": "WARNING",
    "instructionTime": "2030-02-01T16:00:00Z", "serviceStart": "2030-02-01T17:00:00Z",
    "serviceEnd": "2030-02-01T18:00:00Z",
    "serviceTimings": [
        {"serviceType": "REAL", "setpointTime": "2030-02-01T17:00:00Z",
         "setpointType": "DELTA", "units": "KW", "volume": 250},
        {"serviceType": "REAL", "setpointTime": "2030-02-01T17:30:00Z",
         "setpointType": "DELTA", "units": "KW", "volume": 120.5}]}
SITE_KEY = jose.generate_private_key()
SITE_JWKS = {"keys": [jose.public_jwk(SITE_KEY, "site-1")]}
SIGNED_AT = datetime(2030, 2, 1, 16, 59, 30, 250000, tzinfo=UTC)


def parsed(document: dict) -> acks.AckClaim:
    return acks.parse_claim(acks.ack_payloads(document, SITE_KEY, "site-1",
                                              signed_at=SIGNED_AT))


@pytest.mark.parametrize("document", [
    acks.read_back(REVISION, stage="RECEIVED"),
    acks.read_back(REVISION, stage="ACTIONED", outcome="ACCEPTED"),
    acks.read_back(REVISION, stage="ACTIONED", outcome="FAILED", reason="inverter fault"),
    acks.refusal(dispatch_ref="ENWL-0042", fsp="acme", unit="bat1", revision=2,
                 reason="invalid signature"),
])
def test_the_payloads_read_back_exactly_the_signed_document(document):
    claim = parsed(document)
    assert claim.problems == []
    assert claim.read_back == document | {"signedAt": "2030-02-01T16:59:30Z"}
    assert jose.verify(claim.jws, SITE_JWKS) == claim.read_back
    assert acks.read_back_differences(claim.read_back, REVISION) == []


def test_an_acknowledgement_carries_its_signing_time_signed_and_in_the_payloads():
    payloads = {p["type"]: p["values"] for p in acks.ack_payloads(
        acks.read_back(REVISION, stage="RECEIVED"), SITE_KEY, "site-1", signed_at=SIGNED_AT)}
    assert payloads["GB_SIGNED_AT"] == ["2030-02-01T16:59:30Z"]
    assert jose.verify(payloads["GB_ACK_JWS"][0], SITE_JWKS)["signedAt"] == \
        "2030-02-01T16:59:30Z"


def test_a_malformed_signing_time_is_a_format_problem():
    payloads = acks.ack_payloads(acks.read_back(REVISION, stage="RECEIVED"), SITE_KEY,
                                 "site-1", signed_at=SIGNED_AT)
    for payload in payloads:
        if payload["type"] == "GB_SIGNED_AT":
            payload["values"] = ["2030-02-01 16:59"]
    assert any("GB_SIGNED_AT" in problem for problem in acks.parse_claim(payloads).problems)


def test_an_acknowledgement_without_a_signing_time_still_reads_back():
    document = acks.read_back(REVISION, stage="RECEIVED")
    claim = acks.parse_claim(acks.payloads_for(document, jose.sign(document, SITE_KEY,
                                                                   "site-1")))
    assert claim.problems == [] and claim.read_back == document


def test_a_read_back_carries_the_setpoints_flat_in_field_order():
    payloads = {p["type"]: p["values"] for p in acks.ack_payloads(
        acks.read_back(REVISION, stage="RECEIVED"), SITE_KEY, "site-1")}
    assert payloads["GB_ACK_SETPOINTS"] == ["2030-02-01T17:00:00Z", 250, "KW", "DELTA",
                                            "2030-02-01T17:30:00Z", 120.5, "KW", "DELTA"]
    assert payloads["GB_DISPATCH_UNIT"] == ["acme", "bat1"] and payloads["GB_REVISION"] == [2]


def test_a_refusal_reads_back_only_what_identifies_the_revision():
    refusal = acks.refusal(dispatch_ref="ENWL-0042", fsp="acme", unit="bat1", revision=None,
                           reason="unsigned dispatch")
    assert refusal == {"stage": "REFUSED", "dispatchRef": "ENWL-0042", "fspId": "acme",
                       "dispatchUnit": "bat1", "revision": None, "reason": "unsigned dispatch"}
    types = [p["type"] for p in acks.ack_payloads(refusal, SITE_KEY, "site-1")]
    assert "GB_ACK_STATUS" not in types and "GB_ACK_SETPOINTS" not in types


def test_a_different_volume_is_a_read_back_difference():
    wrong = acks.read_back(REVISION, stage="RECEIVED")
    wrong["setpoints"][1]["volume"] = 121
    assert [d.split(":")[0] for d in acks.read_back_differences(wrong, REVISION)] == [
        "setpoints"]


@pytest.mark.parametrize(("change", "problem"), [
    (lambda p: [x for x in p if x["type"] != "GB_ACK_JWS"], "GB_ACK_JWS is missing"),
    (lambda p: [*p, {"type": "GB_ACK_OUTCOME", "values": ["ACCEPTED"]}],
     "RECEIVED acknowledgement carries no GB_ACK_OUTCOME"),
    (lambda p: [{"type": "GB_ACK_STAGE", "values": ["MAYBE"]}, *p], "GB_ACK_STAGE must be"),
    (lambda p: [x if x["type"] != "GB_ACK_SETPOINTS" else {**x, "values": x["values"][:-1]}
                for x in p], "groups of 4"),
])
def test_malformed_acknowledgements_list_their_problems(change, problem):
    payloads = acks.ack_payloads(acks.read_back(REVISION, stage="RECEIVED"), SITE_KEY, "site-1")
    claim = acks.parse_claim(change(payloads))
    assert any(problem in p for p in claim.problems), claim.problems
