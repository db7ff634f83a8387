"""The offline audit-chain verifier on an export built here from scratch: the chain, the
operator's and the site's signatures, and the command line."""

from __future__ import annotations

import copy
import json

import pytest

from gbflex_profile import acks, audit_chain, jose
from gbflex_profile.tests.test_acks import REVISION

OPERATOR_KEY, SITE_KEY = jose.generate_private_key(), jose.generate_private_key()


def link(body: dict, prev: str) -> dict:
    return body | {"prevHash": prev, "hash": audit_chain.entry_hash(body, prev)}


def export() -> dict:
    """Entries 2 and 4 of a chain (3 is another dispatch's, shown as a digest only)."""
    signed = acks.read_back(REVISION, stage="RECEIVED")
    first = link({"sequence": 1, "time": "2030-02-01T16:00:00.000000Z", "kind": "other",
                  "subject": {}, "jws": "", "payload": {}}, audit_chain.GENESIS)
    issued = link({"sequence": 2, "time": "2030-02-01T16:00:01.000000Z",
                   "kind": "revision_issued",
                   "subject": {"networkOperatorId": "ENWL", "dispatchRef": "ENWL-0042",
                               "revision": 2, "kid": "enwl-1"},
                   "jws": jose.sign(REVISION, OPERATOR_KEY, "enwl-1"), "payload": REVISION},
                  first["hash"])
    other = link({"sequence": 3, "time": "2030-02-01T16:00:02.000000Z", "kind": "other",
                  "subject": {}, "jws": "", "payload": {"x": 1}}, issued["hash"])
    acked = link({"sequence": 4, "time": "2030-02-01T16:01:00.000000Z",
                  "kind": "ack_recorded",
                  "subject": {"networkOperatorId": "ENWL", "dispatchRef": "ENWL-0042",
                              "revision": 2, "kid": "site-1"},
                  "jws": jose.sign(signed, SITE_KEY, "site-1"),
                  "payload": {"outcome": "accepted", "signed": signed,
                              "receivedAt": "2030-02-01T16:01:00.000000Z"}}, other["hash"])
    links = [{"sequence": e["sequence"], "prevHash": e["prevHash"],
              "bodyHash": audit_chain.body_hash(e), "hash": e["hash"]}
             for e in (issued, other, acked)]
    return {"format": audit_chain.EXPORT_FORMAT, "networkOperatorId": "ENWL",
            "dispatchRef": "ENWL-0042", "entries": [issued, acked], "links": links,
            "headHash": acked["hash"],
            "operatorKeys": {"keys": [jose.public_jwk(OPERATOR_KEY, "enwl-1")]},
            "siteKeys": {"keys": [jose.public_jwk(SITE_KEY, "site-1")]},
            "siteKeyHistory": [{"kid": "site-1", "created": "2030-01-01T00:00:00.000000Z",
                                "revokedAt": None}]}


def test_an_intact_export_verifies():
    assert audit_chain.verify_export(export()) == []


@pytest.mark.parametrize(("tamper", "problem"), [
    (lambda e: e["entries"][0]["payload"].update(status="STOP"), "hash does not match"),
    (lambda e: e["links"][1].update(bodyHash="0" * 64), "hash does not match"),
    (lambda e: e.update(headHash="f" * 64), "not the stated head"),
    (lambda e: e["operatorKeys"]["keys"][0].update(
        x=jose.public_jwk(SITE_KEY, "x")["x"]), "operator signature"),
    (lambda e: e["siteKeys"].update(keys=[]), "FSP signature: unknown key id"),
    (lambda e: e["siteKeyHistory"][0].update(revokedAt="2030-02-01T16:00:30.000000Z"),
     "revoked before it arrived"),
])
def test_any_tampering_is_found(tamper, problem):
    forged = copy.deepcopy(export())
    tamper(forged)
    problems = audit_chain.verify_export(forged)
    assert any(problem in p for p in problems), problems


def test_the_command_line_exits_0_when_the_export_holds_and_1_otherwise(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(export()))
    forged = export()
    forged["entries"][1]["payload"]["outcome"] = "invalid_signature"
    bad.write_text(json.dumps(forged))
    assert audit_chain.main(["verify", str(good)]) == 0
    assert capsys.readouterr().out.startswith("OK: 2 entries of ENWL/ENWL-0042")
    assert audit_chain.main(["verify", str(bad)]) == 1
    assert "FAIL" in capsys.readouterr().out


def _with_intake(*, signed_by=SITE_KEY, statement_change=None, jws: bool = True,
                 site: str = "north") -> dict:
    """The export with a signed availability intake of the site appended to the chain."""
    from gbflex_profile import report_signing

    document = export()
    body = {"resources": [{"resourceName": "bat1", "intervals": [
        {"id": 0, "intervalPeriod": {"start": "2030-02-01T17:00:00Z", "duration": "PT1H"},
         "payloads": [{"type": "GB_AVAILABLE_KW", "values": [450]}]}]}]}
    signed_body = report_signing.sign_report(body, kind="AVAILABILITY", fsp="acme",
                                             key=signed_by, kid="site-1")
    token = report_signing.report_jws(signed_body["resources"])
    statement = jose.verify(token, {"keys": [jose.public_jwk(signed_by, "site-1")]})
    if statement_change:
        statement_change(statement)
    head = document["links"][-1]
    intake = link({"sequence": head["sequence"] + 1, "time": "2030-02-01T16:02:00.000000Z",
                   "kind": "declarations_recorded",
                   "subject": {"networkOperatorId": "ENWL", "fsp": "acme", "site": site,
                               "intakeId": 7, "kid": "site-1"},
                   "jws": token if jws else "",
                   "payload": {"intakeId": 7, "kind": "availability", "stored": 1,
                               "receivedAt": "2030-02-01T16:02:00.000000Z",
                               "signed": statement}}, head["hash"])
    document["entries"].append(intake)
    document["links"].append({"sequence": intake["sequence"], "prevHash": intake["prevHash"],
                              "bodyHash": audit_chain.body_hash(intake),
                              "hash": intake["hash"]})
    document["headHash"] = intake["hash"]
    document["site"] = {"fsp": "acme", "site": "north"}
    return document


def test_a_signed_declaration_in_an_export_verifies():
    assert audit_chain.verify_export(_with_intake()) == []


@pytest.mark.parametrize(("arguments", "problem"), [
    ({"signed_by": OPERATOR_KEY}, "site signature"),
    ({"statement_change": lambda s: s["resources"][0]["intervals"][0]["payloads"][0].update(
        values=[900])}, "differs from the payload"),
    ({"jws": False}, "no signature"),
    ({"site": "south"}, "about another site"),
])
def test_a_declaration_that_does_not_hold_fails(arguments, problem):
    problems = audit_chain.verify_export(_with_intake(**arguments))
    assert any(problem in p for p in problems), problems


def test_entries_the_vtn_records_unsigned_verify_without_a_signature():
    body = {"sequence": 9, "time": "2030-02-01T16:00:00.000000Z",
            "kind": "comms_loss_confirmed", "subject": {}, "jws": "", "payload": {}}
    assert audit_chain.verify_signatures(body, {}, {}) == []
    assert audit_chain.verify_signatures(body | {"jws": "x.y.z"}, {}, {})
