"""Bulk meter data over HTTPS against the real server: an FSP's metering back office posts
readings of its units to ``POST /dispatch/api/v1/fsp/meter-readings``. New readings are
stored, a repeat is counted as duplicates, a changed value is refused unless it is a
correction (then a new version), faulty rows and another FSP's unit refuse the whole
request with a problem listing the rows and nothing stored, and a site that signs its
readings cannot be bypassed through the back office."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import yaml

from gbflex_profile import jose

API = "/dispatch/api/v1"


def z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def yesterday(period: int) -> datetime:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=1) + timedelta(minutes=30 * period)


class Fleet:
    """Two FSPs of one operator, each with one site, and the first FSP's metering back
    office; an operator client reads back what was stored."""

    def __init__(self, server, operator: str = "NGED-WM"):
        self.server, self.operator = server, operator
        self.fsp, self.other = server.unique("hp"), server.unique("ev")
        # One Django start for the whole set-up: both FSPs, the metering back office and an
        # operator client reaching every operator.
        from dispatch.registry import NETWORK_OPERATORS

        site, other_site, office, operator_client, _ = server.manage_many(
            ["fsp", "onboard", "--operator", operator, "--fsp", self.fsp,
             "--unit", "h1:10:import", "--unit", "h2:10:import"],
            ["fsp", "onboard", "--operator", operator, "--fsp", self.other,
             "--unit", "e1:7:import"],
            ["fsp", "staff-client", "--operator", operator, "--fsp", self.fsp,
             "--name", server.unique("meter-data"), "--role", "metering"],
            ["oadr_client", "create", "--role", "bl", "--name", server.unique("ops")],
            ["operator_scope", "set", "--client", "{client_id}",
             *[a for code in NETWORK_OPERATORS for a in ("--operator", code)]])
        self.site, self.other_site = json.loads(site), json.loads(other_site)
        self.office = server.session(server.token(json.loads(office)))
        self.operator_client = server.session(server.token(json.loads(operator_client)))

    def post(self, rows: list[dict]):
        return self.office.post(f"{self.server.base_url}{API}/fsp/meter-readings",
                                json={"readings": rows}, timeout=60)

    def stored(self, fsp: str, unit: str, history: bool = False) -> list[dict]:
        query = {"fsp": fsp, "unit": unit, "operator": self.operator, "limit": 5000}
        if history:
            query["history"] = "true"
        response = self.operator_client.get(f"{self.server.base_url}{API}/meter-readings",
                                            params=query, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.office.close()
        self.operator_client.close()


def rows_for(unit: str, periods: range, kwh: str = "0.5", kvarh: str | None = "0.1",
             **extra) -> list[dict]:
    rows = []
    for period in periods:
        row = {"unit": unit, "start": z(yesterday(period)), "kwh": kwh, **extra}
        if kvarh is not None:
            row["kvarh"] = kvarh
        rows.append(row)
    return rows


def test_bulk_readings_are_stored_and_a_repeat_is_counted_as_duplicates(vtn_server):
    fleet = Fleet(vtn_server)
    try:
        rows = rows_for("h1", range(48)) + rows_for("h2", range(48), kvarh=None)
        response = fleet.post(rows)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["stored"], body["duplicates"], body["corrections"]) == (144, 0, 0)
        [intake] = body["intakes"]
        assert intake["channel"] == "bulk" and intake["kind"] == "metering"
        assert intake["site"].startswith(f"NGED-WM/{fleet.fsp}/")
        assert intake["stored"] == 144 and intake["signed"] is False
        usage = [r for r in fleet.stored(fleet.fsp, "h1") if r["type"] == "USAGE"]
        assert len(usage) == 48 and {r["value"] for r in usage} == {"0.5"}
        assert usage[0]["start"] == z(yesterday(0))
        assert usage[0]["end"] == z(yesterday(1))
        reactive = [r for r in fleet.stored(fleet.fsp, "h1") if r["type"] == "GB_REACTIVE"]
        assert len(reactive) == 48 and reactive[0]["units"] == "KVARH"

        again = fleet.post(rows)
        assert again.status_code == 200, again.text
        assert (again.json()["stored"], again.json()["duplicates"]) == (0, 144)
        assert len(fleet.stored(fleet.fsp, "h1", history=True)) == 96
    finally:
        fleet.close()


def test_a_changed_reading_is_refused_unless_it_is_a_correction(vtn_server):
    fleet = Fleet(vtn_server)
    try:
        assert fleet.post(rows_for("h1", range(4), kvarh=None)).status_code == 200
        changed = rows_for("h1", range(2, 6), kwh="0.75", kvarh=None)
        refused = fleet.post(changed)
        assert refused.status_code == 400, refused.text
        problem = refused.json()
        assert problem["status"] == 400 and "nothing was stored" in problem["detail"]
        assert [e.split(":")[0] for e in problem["errors"]] == ["readings[0]", "readings[1]"]
        assert all("conflict" in e and "0.5" in e for e in problem["errors"])
        # Nothing of the refused request was written, not even its new periods 4 and 5.
        assert len(fleet.stored(fleet.fsp, "h1")) == 4

        corrected = fleet.post(rows_for("h1", range(2, 6), kwh="0.75", kvarh=None,
                                        correction=True))
        assert corrected.status_code == 200, corrected.text
        body = corrected.json()
        assert (body["stored"], body["duplicates"], body["corrections"]) == (2, 0, 2)
        current = fleet.stored(fleet.fsp, "h1")
        assert [(r["value"], r["version"]) for r in current] == [
            ("0.5", 1), ("0.5", 1), ("0.75", 2), ("0.75", 2), ("0.75", 1), ("0.75", 1)]
        history = fleet.stored(fleet.fsp, "h1", history=True)
        assert sum(1 for r in history if r["supersededAt"]) == 2
    finally:
        fleet.close()


def test_faulty_rows_and_another_fsps_unit_refuse_the_request_without_revealing_it(
        vtn_server):
    fleet = Fleet(vtn_server)
    try:
        rows = rows_for("h1", range(3), kvarh=None) + [
            {"unit": "h1", "start": "yesterday", "kwh": 1},
            {"unit": "h1", "start": z(yesterday(5)), "kwh": "lots"},
            {"unit": "h1", "start": z(yesterday(6))},
            {"unit": "h1", "start": z(yesterday(7)), "kwh": 1, "quality": "GREAT"},
            {"unit": "h1", "start": z(yesterday(8)), "kwh": 1, "colour": "blue"},
        ]
        refused = fleet.post(rows)
        assert refused.status_code == 400, refused.text
        errors = refused.json()["errors"]
        assert [e.split(":")[0] for e in errors] == [f"readings[{i}]" for i in range(3, 8)]
        assert refused.headers["Content-Type"] == "application/json"
        assert fleet.stored(fleet.fsp, "h1") == []

        theirs = fleet.post(rows_for(f"{fleet.other}/e1", range(2)))
        nowhere = fleet.post(rows_for(f"{fleet.other}/nope", range(2)))
        assert theirs.status_code == nowhere.status_code == 400
        assert [e.replace("e1", "X") for e in theirs.json()["errors"]] == \
            [e.replace("nope", "X") for e in nowhere.json()["errors"]]
        assert "unknown_unit" in theirs.json()["errors"][0]
        assert fleet.stored(fleet.other, "e1") == []

        # A valid row of its own does not get through alongside a refused one.
        mixed = fleet.post(rows_for("h2", range(1)) + rows_for(f"{fleet.other}/e1", range(1)))
        assert mixed.status_code == 400 and fleet.stored(fleet.fsp, "h2") == []
        empty = fleet.post([])
        assert empty.status_code == 400
        wrong = fleet.office.post(f"{vtn_server.base_url}{API}/fsp/meter-readings",
                                  json=[{"unit": "h1"}], timeout=30)
        assert wrong.status_code == 400
        # The body's strictness holds whichever way it is read: a lone surrogate is refused.
        lone = fleet.office.post(
            f"{vtn_server.base_url}{API}/fsp/meter-readings",
            data=json.dumps({"readings": [{"unit": "h1\ud800", "start": z(yesterday(9)),
                                           "kwh": 1}]}).encode(),
            headers={"Content-Type": "application/json"}, timeout=30)
        assert lone.status_code == 400 and "surrogate" in lone.json()["detail"]
        assert fleet.stored(fleet.fsp, "h1") == []
    finally:
        fleet.close()


def test_only_a_metering_back_office_may_post_readings(vtn_server):
    fleet = Fleet(vtn_server)
    try:
        reader = json.loads(vtn_server.manage(
            "fsp", "staff-client", "--operator", fleet.operator, "--fsp", fleet.fsp,
            "--name", vtn_server.unique("reader"), "--role", "read_only").stdout)
        assert "write_meter_data" not in reader["scopes"]
        url = f"{vtn_server.base_url}{API}/fsp/meter-readings"
        body = {"readings": rows_for("h1", range(1))}
        with vtn_server.session(vtn_server.token(reader)) as session:
            assert session.post(url, json=body, timeout=30).status_code == 403
        assert fleet.operator_client.post(url, json=body, timeout=30).status_code == 403
        ven = fleet.site  # the site's gateway: its client_id and client_secret
        with vtn_server.session(vtn_server.token(ven)) as session:
            assert session.post(url, json=body, timeout=30).status_code == 403
        assert fleet.stored(fleet.fsp, "h1") == []
    finally:
        fleet.close()


def test_a_site_that_signs_its_readings_is_not_bypassed_through_the_back_office(vtn_server):
    fleet = Fleet(vtn_server, operator="SSEN-S")
    ven = fleet.site  # the site's gateway: its client_id and client_secret
    key = jose.generate_private_key()
    with vtn_server.session(vtn_server.token(ven)) as gateway:
        registered = gateway.post(f"{vtn_server.base_url}{API}/site-keys",
                                  json={"jwk": jose.public_jwk(key, "gw-1")}, timeout=30)
        assert registered.status_code == 201, registered.text
    try:
        refused = fleet.post(rows_for("h1", range(2)))
        assert refused.status_code == 400, refused.text
        assert all("signature_required" in e for e in refused.json()["errors"])
        assert fleet.stored(fleet.fsp, "h1") == []
        # Without the operator's rule (a transition period) the back office's rows are
        # taken, recorded as unsigned bulk intakes.
        vtn_server.manage("dispatch", "signed-reports", "--operator", "SSEN-S",
                          "--allow-unsigned")
        taken = fleet.post(rows_for("h1", range(2)))
        assert taken.status_code == 200, taken.text
        assert taken.json()["intakes"][0]["signed"] is False
    finally:
        vtn_server.manage("dispatch", "signed-reports", "--operator", "SSEN-S", "--require")
        fleet.close()


def json_schema(node):
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable`` becomes a null type."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") and "type" in node:
        converted["type"] = [node["type"], "null"]
    return converted


def test_the_response_matches_the_documented_schema(vtn_server):
    from jsonschema import Draft202012Validator

    fleet = Fleet(vtn_server)
    try:
        document = yaml.safe_load(vtn_server.session("").get(
            f"{vtn_server.base_url}{API}/openapi.yaml", timeout=30).text)
        operation = document["paths"][f"{API}/fsp/meter-readings"]["post"]
        schema_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]
        request_ref = operation["requestBody"]["content"]["application/json"]["schema"]
        assert request_ref["$ref"].endswith("/BulkReadingsRequest")
        schema = json_schema({**schema_ref, "components": document["components"]})
        response = fleet.post(rows_for("h1", range(3)))
        assert response.status_code == 200, response.text
        Draft202012Validator(schema).validate(response.json())
        row = document["components"]["schemas"]["BulkReadingRow"]["properties"]
        assert {"unit", "start", "kwh", "kvarh", "quality", "correction"} <= set(row)
    finally:
        fleet.close()
