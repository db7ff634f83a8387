"""Grading of setpoint read-backs (the reactive-setpoints and delta-vs-absolute scenarios)
on recorded data: the units and setpoint type each setpoint was read back with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conformance import checks
from conformance.checks import AckRecord, RevisionRecord

T0 = datetime(2030, 2, 1, 17, 0, tzinfo=UTC)
KVAR = (("KVAR", "ABSOLUTE"), ("KVAR", "ABSOLUTE"))


def rev(number: int, setpoints=KVAR, status: str = "RUN") -> RevisionRecord:
    return RevisionRecord(number=number, status=status, issued_at=T0, setpoints=setpoints)


def ack(number: int, stage: str, setpoints=KVAR, outcome: str = "accepted") -> AckRecord:
    return AckRecord(revision=number, stage=stage, outcome=outcome,
                     received_at=T0 + timedelta(seconds=2), claimed_revision=number,
                     setpoints=setpoints)


def grade(revisions, acks):
    return checks.setpoints_read_back("kvar-read-back", revisions, acks, what="units (KVAR)")


def test_kvar_read_back_as_issued_passes():
    check = grade([rev(1), rev(2)], [ack(n, s) for n in (1, 2) for s in ("received",
                                                                          "actioned")])
    assert check.passed and "KVAR/ABSOLUTE" in check.observed
    assert check.evidence["revisions"][0]["issued"] == [["KVAR", "ABSOLUTE"]] * 2


def test_kvar_read_back_as_kw_fails_naming_both():
    kw = (("KW", "ABSOLUTE"), ("KW", "ABSOLUTE"))
    check = grade([rev(1)], [ack(1, "received", kw, "read_back_mismatch"),
                             ack(1, "actioned", kw, "read_back_mismatch")])
    assert not check.passed
    assert check.observed == "revision 1: read back KW/ABSOLUTE, issued KVAR/ABSOLUTE"


def test_delta_read_back_as_absolute_fails_only_that_revision():
    delta = (("KW", "DELTA"),)
    absolute = (("KW", "ABSOLUTE"),)
    check = checks.setpoints_read_back(
        "setpoint-types-read-back", [rev(1, delta), rev(2, absolute)],
        [ack(1, "actioned", absolute, "read_back_mismatch"), ack(2, "actioned", absolute)],
        what="setpoint type")
    assert not check.passed and check.observed.startswith("revision 1:")
    assert "revision 2" not in check.observed


def test_without_an_accepted_actioned_read_back_it_fails():
    check = grade([rev(1)], [ack(1, "received")])
    assert not check.passed and "no accepted ACTIONED" in check.observed


def test_stops_and_pre_notifications_are_not_graded_and_nothing_issued_fails():
    assert grade([rev(1), rev(2, (), "STOP")], [ack(1, "actioned")]).passed
    assert not grade([rev(1, (), "STOP")], []).passed
