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
