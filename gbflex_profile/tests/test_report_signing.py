"""Signed availability and meter-reading reports: the agent signs the report's statement,
the VTN verifies exactly that report and nothing else."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from gbflex_profile import jose, report_signing
from gbflex_profile.report_signing import ReportSignatureError, UnsignedReport

SITE_KEY = jose.generate_private_key()
OTHER_KEY = jose.generate_private_key()
SITE_JWKS = {"keys": [jose.public_jwk(SITE_KEY, "north-1")]}
SIGNED_AT = datetime(2030, 2, 1, 15, 0, 5, tzinfo=UTC)
BODY = {
    "reportName": "availability 2030-02-01",
    "payloadDescriptors": [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                            "payloadType": "GB_AVAILABLE_KW", "units": "KW"}],
    "resources": [
        {"resourceName": "bat1", "intervals": [
            {"id": 0, "intervalPeriod": {"start": "2030-02-01T16:00:00Z", "duration": "PT4H"},
             "payloads": [{"type": "GB_AVAILABLE_KW", "values": [450]}]}]},
        {"resourceName": "hp1", "intervals": [
            {"id": 0, "intervalPeriod": {"start": "2030-02-01T17:00:00Z", "duration": "PT2H"},
             "payloads": [{"type": "GB_AVAILABLE_KW", "values": [150.5]}]}]}]}


def signed(body: dict = BODY, *, kind: str = "AVAILABILITY", key=SITE_KEY,
           kid: str = "north-1") -> dict:
    return report_signing.sign_report(body, kind=kind, fsp="acme", key=key, kid=kid,
                                      signed_at=SIGNED_AT)


def verify(body: dict, *, kind: str = "AVAILABILITY", fsp: str = "acme",
           now: datetime | None = None) -> report_signing.SignedReport:
    return report_signing.verify_report(kind=kind, fsp=fsp, resources=body["resources"],
                                        payload_descriptors=body.get("payloadDescriptors"),
                                        jwks=SITE_JWKS, now=now)


def test_the_signature_travels_as_one_extra_resource_over_the_report_statement():
    body = signed()
    assert body["resources"][:2] == BODY["resources"]
    assert body["resources"][2]["resourceName"] == "GB_REPORT_SIGNATURE"
    (interval,) = body["resources"][2]["intervals"]
    assert [p["type"] for p in interval["payloads"]] == ["GB_REPORT_JWS"]
    assert jose.verify(interval["payloads"][0]["values"][0], SITE_JWKS) == {
        "kind": "AVAILABILITY", "fspId": "acme", "signedAt": "2030-02-01T15:00:05Z",
        "payloadDescriptors": [{"payloadType": "GB_AVAILABLE_KW", "units": "KW"}],
        "resources": BODY["resources"]}


def test_a_signed_report_verifies_to_its_statement_kid_and_signing_time():
    result = verify(signed())
    assert result.kid == "north-1" and result.signed_at == SIGNED_AT
    assert result.statement["resources"] == BODY["resources"]
    assert report_signing.content_resources(signed()["resources"]) == BODY["resources"]


def test_signing_again_replaces_the_signature_rather_than_adding_one():
    again = report_signing.sign_report(signed(), kind="AVAILABILITY", fsp="acme",
                                       key=SITE_KEY, kid="north-1")
    assert [r["resourceName"] for r in again["resources"]] == ["bat1", "hp1",
                                                               "GB_REPORT_SIGNATURE"]
    verify(again)


def test_a_report_without_a_signature_is_unsigned():
    with pytest.raises(UnsignedReport):
        verify(BODY)


@pytest.mark.parametrize("tamper", [
    lambda b: b["resources"][0]["intervals"][0]["payloads"][0].update(values=[900]),
    lambda b: b["resources"][1]["intervals"][0]["intervalPeriod"].update(duration="PT3H"),
    lambda b: b["resources"].pop(1),
    lambda b: b["resources"].insert(0, {"resourceName": "bat2", "intervals": []}),
    lambda b: b["payloadDescriptors"][0].update(units="MW"),
    lambda b: b["resources"][0]["intervals"][0]["payloads"][0].update(values=[True]),
], ids=["value", "window", "dropped-unit", "added-unit", "units", "number-as-boolean"])
def test_a_report_changed_after_signing_is_refused(tamper):
    body = copy.deepcopy(signed())
    tamper(body)
    with pytest.raises(ReportSignatureError, match="differ"):
        verify(body)


def test_a_signature_that_does_not_verify_is_refused():
    body = copy.deepcopy(signed())
    payload = body["resources"][2]["intervals"][0]["payloads"][0]
    head, claims, signature = payload["values"][0].split(".")
    payload["values"] = [f"{head}.{claims}.{signature[:-4]}AAAA"]
    with pytest.raises(ReportSignatureError, match="not valid"):
        verify(body)


def test_a_key_the_site_has_not_registered_is_refused():
    with pytest.raises(ReportSignatureError, match="not a registered"):
        verify(signed(key=OTHER_KEY, kid="stranger"))
    with pytest.raises(ReportSignatureError, match="not valid"):
        verify(signed(key=OTHER_KEY))  # the site's kid, another key


def test_a_signature_of_another_kind_or_fsp_is_refused():
    with pytest.raises(ReportSignatureError, match="METERING report"):
        verify(signed(kind="METERING"))
    with pytest.raises(ReportSignatureError, match="names FSP"):
        verify(signed(), fsp="zeta")


def test_a_signing_time_in_the_future_is_refused():
    with pytest.raises(ReportSignatureError, match="future"):
        verify(signed(), now=SIGNED_AT - timedelta(minutes=6))
    verify(signed(), now=SIGNED_AT - timedelta(minutes=4))


@pytest.mark.parametrize("resource", [
    {"resourceName": "GB_REPORT_SIGNATURE", "intervals": []},
    {"resourceName": "GB_REPORT_SIGNATURE", "intervals": [
        {"id": 0, "payloads": [{"type": "GB_REPORT_JWS", "values": ["a", "b"]}]}]},
    {"resourceName": "GB_REPORT_SIGNATURE", "intervals": [
        {"id": 0, "payloads": [{"type": "USAGE", "values": ["x.y.z"]}]}]},
])
def test_a_malformed_signature_resource_is_refused(resource):
    with pytest.raises(ReportSignatureError):
        verify({**BODY, "resources": [*BODY["resources"], resource]})


def test_two_signature_resources_are_refused():
    body = signed()
    with pytest.raises(ReportSignatureError, match="2 GB_REPORT_SIGNATURE"):
        verify({**body, "resources": [*body["resources"], body["resources"][-1]]})


def test_signing_times_are_utc_to_the_second():
    assert report_signing.utc_text(SIGNED_AT.replace(microsecond=999)) == \
        "2030-02-01T15:00:05Z"
    for text in ("2030-02-01T15:00:05+00:00", "2030-02-01 15:00:05Z", 20300201, None):
        with pytest.raises(ValueError):
            report_signing.parse_utc(text)
