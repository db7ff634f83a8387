"""Operator console audit log: search by operator, dispatch reference, kind and date
range; a dispatch's evidence bundle downloads as the `dispatch audit-export` document."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from gbflex_profile import audit_chain


def sequences(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr class="audit-entry">\s*<th scope="row">(\d+)<',
                                       page)]


def test_audit_search_filters(console, issue):
    first = issue(reference="AUD-1")
    issue(reference="AUD-2")
    from dispatch.issuing import stop_dispatch

    stop_dispatch(dispatch=first, issued_by="test")
    client = console("viewer")
    everything = sequences(client.get("/console/audit").content.decode())
    assert everything == [3, 2, 1]
    assert sequences(client.get("/console/audit?dispatch_ref=AUD-1").content.decode()) == [3, 1]
    assert sequences(client.get("/console/audit?operator=enwl&dispatch_ref=AUD-2")
                     .content.decode()) == [2]
    assert sequences(client.get("/console/audit?operator=UKPN-LPN").content.decode()) == []
    assert sequences(client.get("/console/audit?kind=ack_recorded").content.decode()) == []
    assert sequences(client.get("/console/audit?kind=revision_issued")
                     .content.decode()) == [3, 2, 1]
    past = datetime.now(UTC) - timedelta(days=1)
    assert sequences(client.get(f"/console/audit?until={past:%Y-%m-%d %H:%M}")
                     .content.decode()) == []
    assert sequences(client.get(f"/console/audit?since={past:%Y-%m-%d %H:%M}")
                     .content.decode()) == [3, 2, 1]


def test_the_evidence_bundle_downloads_and_verifies(console, issue):
    dispatch = issue(reference="AUD-9")
    response = console("viewer").get("/console/dispatches/ENWL/AUD-9/evidence")
    assert response.status_code == 200
    assert 'filename="ENWL-AUD-9-audit.json"' in response["Content-Disposition"]
    document = json.loads(response.content)
    assert document["dispatchRef"] == dispatch.reference
    assert len(document["entries"]) == 1
    assert audit_chain.verify_export(document) == []
