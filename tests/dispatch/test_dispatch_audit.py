"""The hash-chained audit log: written with every revision and acknowledgement, immutable,
exported per dispatch and verified offline by a verifier that imports no Django."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from dispatch import issuing
from dispatch.models import AuditEntry
from gbflex_profile import audit_chain
from tests.dispatch.test_dispatch_acks import FspAgent
from tests.dispatch.test_dispatch_api import Api
from tests.fixtures.api import new_actor
from tests.fixtures.dispatch import hour, timing
from vtn.append_only import AppendOnlyError

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def disputed(issue, gb, django_capture_on_commit_callbacks):
    """ACK-D: issued, acknowledged (received, accepted), revised, acknowledged with a bad
    signature, stopped; with another dispatch's entries interleaved in the chain."""
    agent = FspAgent(gb.acme)
    assert agent.register()[0] == 201
    dispatch = issue(reference="ACK-D")
    start = hour(2)
    other = issue(unit="z1", reference="OTHER", service_start=start, timings=[timing(start, 50)])
    first = dispatch.revisions.get()
    agent.report(dispatch, [agent.read_back(first)], capture=django_capture_on_commit_callbacks)
    issuing.revise_dispatch(dispatch=other, urgency="emergency")
    second = issuing.revise_dispatch(dispatch=dispatch, urgency="emergency")
    agent.report(dispatch, [agent.read_back(second)], key=FspAgent(gb.acme).key,
                 capture=django_capture_on_commit_callbacks)
    agent.report(dispatch, [agent.read_back(second, stage="ACTIONED", outcome="ACCEPTED")],
                 capture=django_capture_on_commit_callbacks)
    issuing.stop_dispatch(dispatch=dispatch)
    return dispatch


def export_file(tmp_path: Path, reference: str = "ACK-D") -> Path:
    out = tmp_path / "audit.json"
    printed = StringIO()
    call_command("dispatch", "audit-export", reference, "--out", str(out), stdout=printed)
    assert json.loads(printed.getvalue())["file"] == str(out)
    return out


def verify_offline(path: Path) -> subprocess.CompletedProcess:
    """Run the standalone verifier in a fresh interpreter that refuses to import Django."""
    guard = ("import sys; sys.modules['django'] = None; "
             "from gbflex_profile.audit_chain import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", guard, "verify", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_chain_spans_revisions_and_acknowledgements(disputed):
    entries = list(AuditEntry.objects.filter(dispatch_ref="ACK-D"))
    assert [(e.kind, e.subject["revision"]) for e in entries] == [
        ("revision_issued", 1), ("ack_recorded", 1), ("revision_issued", 2),
        ("ack_recorded", 2), ("ack_recorded", 2), ("revision_issued", 3)]
    assert [e.payload["outcome"] for e in entries if e.kind == "ack_recorded"] == [
        "accepted", "invalid_signature", "accepted"]
    chain = list(AuditEntry.objects.order_by("sequence"))
    assert [e.sequence for e in chain] == list(range(1, len(chain) + 1))
    assert chain[0].prev_hash == audit_chain.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(chain, chain[1:], strict=False))
    from dispatch.audit import entry_body

    assert all(audit_chain.entry_hash(entry_body(e), e.prev_hash) == e.hash for e in chain)
    assert entries[0].jws == disputed.revisions.get(number=1).signature


def test_entries_cannot_be_updated_or_deleted(disputed):
    entry = AuditEntry.objects.first()
    entry.payload = {"forged": True}
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(jws="x")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()


def test_the_export_verifies_offline_without_django(disputed, tmp_path):
    path = export_file(tmp_path)
    export = json.loads(path.read_text())
    assert len(export["entries"]) == 6 and export["siteKeys"]["keys"]
    assert {k["kid"] for k in export["operatorKeys"]["keys"]} == {
        disputed.revisions.get(number=1).signing_key.kid}
    other = [link for link in export["links"]
             if link["sequence"] not in {e["sequence"] for e in export["entries"]}]
    assert other and all("payload" not in link for link in other)  # digests only
    assert "OTHER" not in json.dumps(other)
    assert audit_chain.verify_export(export) == []
    result = verify_offline(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: 6 entries of ENWL/ACK-D")


@pytest.mark.parametrize("tamper", [
    "payload", "jws", "time", "drop_entry", "reorder", "link", "outcome", "key"])
def test_a_modified_export_fails(disputed, tmp_path, tamper):
    path = export_file(tmp_path)
    export = json.loads(path.read_text())
    forged = copy.deepcopy(export)
    entries = forged["entries"]
    if tamper == "payload":
        entries[0]["payload"]["serviceTimings"][0]["volume"] = 1
    elif tamper == "jws":
        entries[2]["jws"] = entries[0]["jws"]
    elif tamper == "time":
        entries[1]["time"] = "2020-01-01T00:00:00.000000Z"
    elif tamper == "drop_entry":
        dropped = entries.pop(1)
        forged["links"] = [link for link in forged["links"]
                           if link["sequence"] != dropped["sequence"]]
    elif tamper == "reorder":
        entries[0]["sequence"], entries[2]["sequence"] = (entries[2]["sequence"],
                                                         entries[0]["sequence"])
    elif tamper == "link":
        forged["links"][3]["bodyHash"] = "0" * 64
    elif tamper == "outcome":
        entries[3]["payload"]["outcome"] = "accepted"
    elif tamper == "key":
        forged["operatorKeys"]["keys"][0]["x"] = forged["siteKeys"]["keys"][0]["x"]
    assert audit_chain.verify_export(forged), tamper
    path.write_text(json.dumps(forged))
    result = verify_offline(path)
    assert result.returncode == 1 and "FAIL" in result.stdout, result.stdout


def test_an_outcome_the_vtn_recorded_is_checked_against_the_signature(disputed, tmp_path):
    """Recomputing the hashes after editing is caught too: a forged "accepted" entry whose
    FSP signature does not verify fails the signature check, not only the chain."""
    export = json.loads(export_file(tmp_path).read_text())
    entry = next(e for e in export["entries"]
                 if e["payload"].get("outcome") == "invalid_signature")
    entry["payload"]["outcome"] = "accepted"
    problems = audit_chain.verify_export(export)
    assert any("FSP signature" in p for p in problems)


def test_the_operator_api_serves_the_export(disputed, gb):
    operator = Api(new_actor("operator", "bl", "3.1.0").token)
    status, export, _ = operator.get("/dispatches/ENWL/ACK-D/audit-export")
    assert status == 200 and audit_chain.verify_export(export) == []
    assert Api(gb.acme.token).get("/dispatches/ENWL/ACK-D/audit-export")[0] == 403
    assert operator.get("/dispatches/ENWL/NOPE/audit-export")[0] == 404


def test_the_verifier_module_imports_no_django():
    source = (ROOT / "gbflex_profile" / "audit_chain.py").read_text()
    assert "django" not in source.lower().replace("no django", "")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['django'] = None; "
         "import gbflex_profile.audit_chain, dispatch.signing; print('ok')"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_an_ack_signed_with_a_revoked_key_verifies_as_unknown_key(
        issue, gb, tmp_path, django_capture_on_commit_callbacks):
    agent = FspAgent(gb.acme)
    assert agent.register()[0] == 201
    dispatch = issue(reference="REVOKED")
    revision = dispatch.revisions.get()
    agent.report(dispatch, [agent.read_back(revision)],
                 capture=django_capture_on_commit_callbacks)
    Api(gb.acme.token).post(f"/site-keys/{agent.kid}/revoke", {})
    late = agent.report(dispatch, [agent.read_back(revision, stage="ACTIONED",
                                                   outcome="ACCEPTED")],
                        capture=django_capture_on_commit_callbacks)
    assert [a.outcome for a in late] == ["unknown_key"]
    export = json.loads(export_file(tmp_path, "REVOKED").read_text())
    assert export["siteKeyHistory"][0]["revokedAt"]
    assert audit_chain.verify_export(export) == []
    export["siteKeyHistory"][0]["revokedAt"] = None  # then it would have been accepted
    assert any("signature verifies" in p for p in audit_chain.verify_export(export))
