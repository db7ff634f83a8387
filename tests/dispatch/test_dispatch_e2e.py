"""End to end over HTTPS: the operator issues a dispatch through the dispatch API of the
real server; a plain OpenADR VEN (requests, knowing nothing of the profile beyond payload
names) reads the event in both versions and verifies the signature against the published
JWKS; another FSP's VEN cannot see it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import requests
from jwcrypto import jwk, jws


def z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_operator_dispatch_reaches_only_the_owning_ven(vtn_server):
    fsp, other = vtn_server.unique("wind"), vtn_server.unique("solar")
    mine = json.loads(vtn_server.manage("fsp", "onboard", "--operator", "NGED-WM", "--fsp", fsp,
                                        "--unit", "wt1:2000:export").stdout)
    theirs = json.loads(vtn_server.manage("fsp", "onboard", "--operator", "NGED-WM", "--fsp",
                                          other, "--unit", "pv1:900:export").stdout)
    vtn_server.manage("fsp", "contract", "--operator", "NGED-WM", "--fsp", fsp, "--id",
                      f"{fsp}-mw", "--product", "MW_DISPATCH", "--unit", "wt1")
    bl = vtn_server.create_client("bl", "dno-ops")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    with vtn_server.session(vtn_server.token(bl)) as operator:
        response = operator.post(f"{vtn_server.base_url}/dispatch/api/v1/dispatches", json={
            "unit": f"{fsp}/wt1", "product": "MW_DISPATCH", "reference": f"{fsp}-001",
            "serviceStart": z(start), "serviceEnd": z(start + timedelta(minutes=30)),
            "serviceTimings": [{"setpointTime": z(start), "volume": 0,
                                "setpointType": "absolute"}]}, timeout=30)
        assert response.status_code == 201, response.text
        dispatch = response.json()
    event_id = dispatch["eventID"]
    jwks = requests.get(f"{vtn_server.base_url}/.well-known/jwks.json",
                        verify=vtn_server.ca_bundle, timeout=30)
    assert jwks.status_code == 200 and "public" in jwks.headers["Cache-Control"]
    key_set = jwk.JWKSet.from_json(jwks.text)

    for version in ("3.1.0", "3.0.1"):
        with vtn_server.session(vtn_server.token(mine, version)) as ven:
            events = ven.get(vtn_server.url(version, "events"), timeout=30)
            assert events.status_code == 200
            event = next(e for e in events.json() if e["id"] == event_id)
            first = {p["type"]: p["values"] for p in event["intervals"][0]["payloads"]}
            assert first["DISPATCH_SETPOINT"] == [0]
            assert first["DISPATCH_INSTRUCTION"] == ["RUN"]
            assert event["intervalPeriod"]["start"] == z(start)
            assert event["payloadDescriptors"][0]["units"] == "KW"
            signed = jws.JWS()
            signed.deserialize(first["GB_SIGNATURE"][0])
            signed.verify(key_set.get_key(signed.jose_header["kid"]), alg="EdDSA")
            document = json.loads(signed.payload)
            assert document["dispatchRef"] == f"{fsp}-001" and document["revision"] == 1
            assert document["serviceTimings"][0]["volume"] == 0
        with vtn_server.session(vtn_server.token(theirs, version)) as intruder:
            listed = intruder.get(vtn_server.url(version, "events"), timeout=30)
            assert listed.status_code == 200
            assert event_id not in {e["id"] for e in listed.json()}
            direct = intruder.get(vtn_server.url(version, f"events/{event_id}"), timeout=30)
            assert direct.status_code == 404


def test_a_placed_mw_dispatch_setpoint_cannot_be_rewritten_once_past(vtn_server):
    """MW Dispatch has no notice, yet a setpoint already in the past is binding: over the
    real API a revision rewriting it is a problem document; changing the future is not."""
    import time

    fsp = vtn_server.unique("wind")
    vtn_server.manage("fsp", "onboard", "--operator", "NGED-WM", "--fsp", fsp,
                      "--unit", "wt1:2000:export")
    vtn_server.manage("fsp", "contract", "--operator", "NGED-WM", "--fsp", fsp, "--id",
                      f"{fsp}-mw", "--product", "MW_DISPATCH", "--unit", "wt1")
    bl = vtn_server.create_client("bl", "dno-ops")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    setpoints = [{"setpointTime": z(start), "volume": 0, "setpointType": "absolute"},
                 {"setpointTime": z(start + timedelta(minutes=10)), "volume": 0,
                  "setpointType": "absolute"}]
    reference = f"{fsp}-bind"
    with vtn_server.session(vtn_server.token(bl)) as operator:
        response = operator.post(f"{vtn_server.base_url}/dispatch/api/v1/dispatches", json={
            "unit": f"{fsp}/wt1", "product": "MW_DISPATCH", "reference": reference,
            "serviceStart": z(start), "serviceEnd": z(start + timedelta(minutes=30)),
            "serviceTimings": setpoints}, timeout=30)
        assert response.status_code == 201, response.text
        time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 1.5)
        revisions = (f"{vtn_server.base_url}/dispatch/api/v1/dispatches/NGED-WM/"
                     f"{reference}/revisions")
        rewrite = operator.post(revisions, json={"serviceTimings": [
            dict(setpoints[0], volume=400), dict(setpoints[1], volume=400)]}, timeout=30)
        assert rewrite.status_code == 400, rewrite.text
        assert rewrite.headers["Content-Type"] == "application/json"
        assert any("cannot be changed" in e for e in rewrite.json()["errors"])
        extended = operator.post(revisions, json={
            "serviceEnd": z(start + timedelta(hours=1)), "expectedRevision": 1}, timeout=30)
        assert extended.status_code == 201, extended.text
        shown = operator.get(f"{vtn_server.base_url}/dispatch/api/v1/dispatches/NGED-WM/"
                             f"{reference}", timeout=30).json()
    assert [r["revision"] for r in shown["revisions"]] == [1, 2]
    assert [t["volume"] for t in shown["current"]["document"]["serviceTimings"]] == [0, 0]
