"""Grading of each conformance check on recorded data (no database, no processes): a pass
and a fail case each, with the evidence the report shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conformance import checks
from conformance.checks import AckRecord, IntakeRecord, RevisionRecord, TransitionRecord

T0 = datetime(2030, 2, 1, 17, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rev(number: int, status: str = "RUN", issued: float = 0, kid: str = "enwl-1"):
    return RevisionRecord(number=number, status=status, issued_at=at(issued), kid=kid)


def ack(number: int, stage: str, seconds: float, outcome: str = "accepted", detail: str = ""):
    return AckRecord(revision=number, stage=stage, outcome=outcome, received_at=at(seconds),
                     claimed_revision=number, detail=detail)


# --- acknowledged in time ----------------------------------------------------------------------


def test_an_accepted_ack_within_the_deadline_passes_with_its_timing():
    check = checks.acknowledged(rev(1), [ack(1, "received", 1.5)], stage="received",
                                deadline_s=5)

    assert check.passed
    assert check.name == "received-r1"
    assert check.observed == "accepted after 1.5 s"
    assert check.evidence["acknowledgements"][0]["secondsAfterIssue"] == 1.5
    assert check.evidence["deadlineSeconds"] == 5


def test_an_accepted_ack_after_the_deadline_fails_as_late():
    check = checks.acknowledged(rev(1), [ack(1, "actioned", 9)], stage="actioned", deadline_s=5)

    assert not check.passed
    assert "late" in check.observed


def test_a_read_back_mismatch_fails_and_shows_the_outcome_and_detail():
    check = checks.acknowledged(rev(1), [ack(1, "received", 1, "read_back_mismatch",
                                             "setpoint 1 volume 251 != 250")],
                                stage="received", deadline_s=5)

    assert not check.passed
    assert "read_back_mismatch" in check.observed and "251" in check.observed
    assert check.evidence["acknowledgements"][0]["outcome"] == "read_back_mismatch"


def test_no_acknowledgement_fails():
    check = checks.acknowledged(rev(2), [ack(1, "received", 1)], stage="received", deadline_s=5)

    assert not check.passed
    assert check.observed == "no acknowledgement recorded"
    assert check.evidence["acknowledgements"] == []


def test_a_refusal_fails_the_received_check_and_names_the_reason():
    refusal = AckRecord(revision=1, stage="refused", outcome="accepted", received_at=at(1),
                        reason="unknown kid")
    check = checks.acknowledged(rev(1), [refusal], stage="received", deadline_s=5)

    assert not check.passed
    assert "refused" in check.observed and "unknown kid" in check.observed


def test_revision_checks_want_actioned_for_run_and_stop_but_not_pre_notify():
    revisions = [rev(1, "PRE_NOTIFY"), rev(2, "RUN", 2), rev(3, "STOP", 4)]

    names = [c.name for c in checks.revision_checks(revisions, [], deadline_s=5)]

    assert names == ["received-r1", "received-r2", "actioned-r2", "received-r3", "actioned-r3"]


# --- every ack valid ---------------------------------------------------------------------------


def test_acks_valid_passes_when_all_were_accepted():
    check = checks.acks_valid([rev(1)], [ack(1, "received", 1), ack(1, "actioned", 2)])

    assert check.passed
    assert check.observed == "all 2 accepted"


def test_acks_valid_fails_on_a_bad_signature_and_counts_outcomes():
    check = checks.acks_valid([rev(1)], [ack(1, "received", 1, "invalid_signature", "bad sig"),
                                         ack(1, "actioned", 2, "invalid_signature", "bad sig")])

    assert not check.passed
    assert "2 invalid_signature" in check.observed and "bad sig" in check.observed


def test_acks_valid_refuses_stale_unless_the_scenario_allows_it():
    acks = [ack(1, "received", 1, "stale_revision"), ack(2, "received", 1)]

    assert not checks.acks_valid([rev(1), rev(2)], acks).passed
    assert checks.acks_valid([rev(1), rev(2)], acks, allow_stale=True).passed


def test_acks_valid_fails_without_any_acknowledgement():
    assert not checks.acks_valid([rev(1)], []).passed


# --- stale revisions ---------------------------------------------------------------------------


def test_late_acks_of_the_older_revision_recorded_stale_pass():
    older, newer = rev(1, issued=0), rev(2, issued=0.1)
    check = checks.stale_recorded(older, newer, [ack(1, "received", 1, "stale_revision")])

    assert check.passed
    assert check.evidence["lateAcknowledgements"][0]["outcome"] == "stale_revision"


def test_a_late_ack_of_the_older_revision_recorded_accepted_fails():
    older, newer = rev(1, issued=0), rev(2, issued=0.1)

    check = checks.stale_recorded(older, newer, [ack(1, "received", 1, "accepted")])

    assert not check.passed
    assert "accepted" in check.observed


def test_actioning_the_older_revision_after_holding_the_newer_fails():
    older, newer = rev(1), rev(2, issued=0.1)
    acks = [ack(2, "received", 1), ack(1, "actioned", 2, "stale_revision"),
            ack(2, "actioned", 3)]

    check = checks.not_actioned_stale(older, newer, acks)

    assert not check.passed
    assert check.evidence["actionedOfOlder"][0]["outcome"] == "stale_revision"


def test_actioning_the_older_revision_before_seeing_the_newer_is_fine():
    older, newer = rev(1), rev(2, issued=3)
    acks = [ack(1, "received", 1), ack(1, "actioned", 2), ack(2, "received", 4),
            ack(2, "actioned", 5)]

    assert checks.not_actioned_stale(older, newer, acks).passed


# --- exactly once ------------------------------------------------------------------------------


def test_each_stage_once_and_accepted_passes():
    acks = [ack(1, "received", 10), ack(1, "actioned", 10.1)]

    assert checks.exactly_once(rev(1), acks).passed


def test_a_stage_recorded_twice_fails_as_not_exactly_once():
    acks = [ack(1, "received", 10), ack(1, "received", 10.2, "duplicate"),
            ack(1, "actioned", 10.1)]

    check = checks.exactly_once(rev(1), acks)

    assert not check.passed
    assert check.observed == "RECEIVED recorded 2 time(s)"
    assert check.evidence["counts"] == {"received": 2, "actioned": 1}


def test_a_lost_acknowledgement_fails_exactly_once():
    check = checks.exactly_once(rev(1), [ack(1, "received", 10)])

    assert not check.passed
    assert "ACTIONED recorded 0 time(s)" in check.observed


# --- heartbeats --------------------------------------------------------------------------------


def test_regular_polls_pass_the_heartbeat_check():
    heard = [at(s) for s in range(0, 31, 4)]

    check = checks.heartbeat_regular(heard=heard, start=at(0), end=at(30), interval_s=5)

    assert check.passed
    assert check.evidence["longestGapSeconds"] <= 5


def test_a_silence_longer_than_the_interval_fails_and_says_when():
    heard = [at(0), at(3), at(12), at(14)]

    check = checks.heartbeat_regular(heard=heard, start=at(0), end=at(15), interval_s=5)

    assert not check.passed
    assert check.evidence["longestGapSeconds"] == 9
    assert check.evidence["longestGapBetween"] == [checks.iso(at(3)), checks.iso(at(12))]


def test_silence_at_the_end_of_the_window_counts():
    check = checks.heartbeat_regular(heard=[at(1)], start=at(0), end=at(20), interval_s=5)

    assert not check.passed


def test_time_inside_an_injected_fault_does_not_count_as_silence():
    heard = [at(0), at(4), at(30), at(34)]

    check = checks.heartbeat_regular(heard=heard, start=at(0), end=at(35), interval_s=5,
                                     excluded=[(at(5), at(29))])

    assert check.passed


def test_no_heartbeat_interval_means_not_applicable():
    check = checks.heartbeat_regular(heard=[], start=at(0), end=at(100), interval_s=None)

    assert check.passed and check.observed == "not applicable"


# --- comms loss --------------------------------------------------------------------------------


def test_comms_lost_then_restored_pass():
    transitions = [TransitionRecord("online", "comms_lost", at(5)),
                   TransitionRecord("comms_lost", "online", at(12))]

    assert checks.comms_lost_marked(transitions, fault_start=at(0), fault_end=at(10)).passed
    restored = checks.comms_restored(transitions, fault_end=at(10), deadline_s=5)
    assert restored.passed and restored.observed == "online 2 s after the outage"


def test_never_marked_lost_and_never_restored_fail():
    assert not checks.comms_lost_marked([], fault_start=at(0), fault_end=at(10)).passed
    assert not checks.comms_restored([TransitionRecord("online", "comms_lost", at(5))],
                                     fault_end=at(10), deadline_s=5).passed


def test_requests_about_once_per_retry_after_back_off():
    hits = [at(s) for s in (0, 2.1, 4.3, 6.2, 8.5)]

    check = checks.backed_off(hits, fault_start=at(0), fault_end=at(10), retry_after_s=2)

    assert check.passed
    assert check.evidence["requests"] == 5 and check.evidence["bound"] == 9


def test_hammering_during_the_outage_fails_back_off():
    hits = [at(s / 10) for s in range(100)]

    check = checks.backed_off(hits, fault_start=at(0), fault_end=at(10), retry_after_s=2)

    assert not check.passed
    assert check.observed.startswith("100 requests")


def test_resumes_polling_within_the_deadline():
    assert checks.resumed(heard_after=at(12), fault_end=at(10), deadline_s=5).passed
    assert not checks.resumed(heard_after=at(20), fault_end=at(10), deadline_s=5).passed
    assert not checks.resumed(heard_after=None, fault_end=at(10), deadline_s=5).passed


# --- meter readings ----------------------------------------------------------------------------


def intake(rejected: int = 0, problems: tuple = ()) -> IntakeRecord:
    return IntakeRecord(report_id="r1", received_at=at(3), stored=8 - rejected, duplicates=0,
                        corrections=0, rejected=rejected, problems=problems)


def test_readings_without_rejections_pass():
    check = checks.readings_accepted([intake()])

    assert check.passed
    assert check.evidence["intakes"][0]["stored"] == 8


def test_a_rejected_reading_fails_with_its_reason():
    check = checks.readings_accepted([intake(1, ({"outcome": "conflict",
                                                  "detail": "differs from stored"},))])

    assert not check.passed
    assert "conflict: differs from stored" in check.observed


def test_no_reading_report_fails():
    assert not checks.readings_accepted([]).passed


def test_every_period_covered_passes_and_a_gap_is_named():
    wanted = [("bat1", at(0)), ("bat1", at(1800))]

    assert checks.periods_covered(wanted, wanted).passed
    check = checks.periods_covered(wanted, wanted[:1])
    assert not check.passed
    assert check.evidence["missing"] == [{"unit": "bat1", "start": checks.iso(at(1800))}]


def _actioned(result: str, reason: str = "", number: int = 1) -> AckRecord:
    return AckRecord(revision=number, stage="actioned", outcome="accepted",
                     received_at=at(2), result=result, reason=reason)


def test_a_run_whose_every_actioned_acknowledgement_failed_is_flagged():
    acks = [ack(1, "received", 1), _actioned("FAILED", "controller offline"),
            ack(2, "received", 1), _actioned("FAILED", "controller offline", 2),
            _actioned("FAILED", "timeout", 2)]

    flag = checks.all_actioned_failed(acks)

    assert flag["name"] == "all-actioned-failed"
    assert "(3)" in flag["detail"]
    assert flag["reasons"] == ["controller offline", "timeout"]


def test_no_flag_when_one_actioned_acknowledgement_was_accepted_or_none_was_sent():
    assert checks.all_actioned_failed(
        [_actioned("FAILED", "x"), _actioned("ACCEPTED", number=2)]) is None
    assert checks.all_actioned_failed([ack(1, "received", 1)]) is None
    assert checks.all_actioned_failed([]) is None


# --- push notifications ----------------------------------------------------------------------


def delivery(object_id: str, state: str = "delivered", delivered: float | None = 1.0,
             error: str = "") -> checks.DeliveryRecord:
    return checks.DeliveryRecord(
        subscription_id="s1", callback_url="https://ven.example/cb", object_type="EVENT",
        operation="CREATE", object_id=object_id, state=state, created=at(0.5),
        delivered_at=at(delivered) if delivered is not None else None, attempts=1,
        last_error=error)


def test_the_echo_check_fails_with_the_first_callback_that_did_not_echo():
    good = checks.webhook_echo([checks.EchoRecord("https://a/cb", "")])
    bad = checks.webhook_echo([checks.EchoRecord("https://a/cb", ""),
                               checks.EchoRecord("https://b/cb", "no echo value")])

    assert good.passed and good.observed == "all 1 answered"
    assert not bad.passed and bad.observed == "1 of 2 failed: no echo value"
    assert bad.evidence["callbacks"][1] == {"callbackUrl": "https://b/cb",
                                            "error": "no echo value"}


def test_a_notification_of_the_own_event_must_be_delivered_within_the_deadline():
    on_time = checks.webhook_delivered([delivery("e1", delivered=2.0)], event_id="e1",
                                       issued_at=at(0), deadline_s=5)
    late = checks.webhook_delivered([delivery("e1", delivered=7.0)], event_id="e1",
                                    issued_at=at(0), deadline_s=5)
    refused = checks.webhook_delivered([delivery("e1", "pending", None, "HTTP 500")],
                                       event_id="e1", issued_at=at(0), deadline_s=5)
    nothing = checks.webhook_delivered([delivery("other")], event_id="e1", issued_at=at(0),
                                       deadline_s=5)

    assert on_time.passed and on_time.observed == "delivered after 2 s"
    assert not late.passed
    assert not refused.passed and refused.observed == "not delivered: HTTP 500"
    assert not nothing.passed and "no notification about the event" in nothing.observed


def test_a_notification_about_another_vens_object_fails_privacy():
    clean = checks.notified_only_of_own([delivery("e1")], foreign_ids={"decoy"},
                                        name="webhook-private")
    leaked = checks.notified_only_of_own([delivery("e1"), delivery("decoy")],
                                         foreign_ids={"decoy"}, name="webhook-private")

    assert clean.passed
    assert not leaked.passed and leaked.observed.startswith("1 notification")


def test_topic_discovery_needs_the_event_topics():
    asked = checks.topics_discovered([("PROGRAM", at(1)), ("EVENT", at(2))], ven_id="v1")
    only_programs = checks.topics_discovered([("PROGRAM", at(1))], ven_id="v1")

    assert asked.passed and asked.evidence["discovered"][1]["objects"] == "EVENT"
    assert not only_programs.passed


def test_a_woken_ven_acknowledges_far_sooner_than_it_polls():
    woken = checks.woken([ack(1, "received", 0.4)], revision=rev(1), within_s=2,
                         poll_interval_s=30)
    polled = checks.woken([ack(1, "received", 12)], revision=rev(1), within_s=2,
                          poll_interval_s=30)
    invalid = checks.woken([ack(1, "received", 0.4, outcome="invalid_signature")],
                           revision=rev(1), within_s=2, poll_interval_s=30)

    assert woken.passed and woken.name == "mqtt-woken"
    assert not polled.passed and polled.observed == "RECEIVED after 12 s"
    assert not invalid.passed
