"""The polling agent: one cycle polls, verifies, acts, acknowledges and reports.

The durable order of work for a dispatch revision (docs/fsp-agent.md, "Durability"):

1. the verified revision and its RECEIVED acknowledgement are written to the state
   database in one transaction; the outbox is flushed (RECEIVED goes out first);
2. the revision is marked ``actioning`` (committed) and the handler runs;
3. its outcome and the ACTIONED acknowledgement are written in one transaction; flush.

A crash before 1 commits loses nothing (the event is polled again). A crash between 2
and 3 leaves the revision ``actioning``: on restart the handler is **not** run again and
ACTIONED FAILED "agent restarted during actioning; state unknown" is sent, because
re-running an instruction whose first run may have reached the asset is worse than
telling the operator the truth. Every message leaves through the outbox with an
``Idempotency-Key`` and, after an attempt that got no answer, is looked up at the VTN
before it is sent again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gbflex_profile import acks, jose, report_signing
from gbflex_profile.vocabulary import (
    ACTIONED,
    GB_HEARTBEAT_INTERVAL,
    GB_OFFLINE_LOG,
    RECEIVED,
    REPORT_KINDS,
)
from ven_client import handler, logs, profile, reports
from ven_client.config import Config
from ven_client.store import OutboxMessage, Revision, Store
from ven_client.transport import AuthError, Backoff, Transport, Unavailable, poll_delay

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ven_client.push import Push

# What the VTN's intake of a readings or availability report counts (logged when sent).
INTAKE_COUNTS = ("stored", "duplicates", "corrections", "rejected")
MAX_ROW_WARNINGS = 50  # rejected rows logged one by one per report; the rest summed up

PAGE = 50
INTERRUPTED = "agent restarted during actioning; state unknown"
JWKS_REFETCH_MIN_S = 5.0
DEFAULT_HEARTBEAT_S = 60.0


class AgentError(Exception):
    """The agent cannot work with this VTN or configuration (not a passing outage)."""


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _flat_targets(targets: list | None) -> list[str]:
    """Target values of either wire form (3.1 strings, 3.0.1 valuesMaps)."""
    values = []
    for target in targets or []:
        if isinstance(target, str):
            values.append(target)
        elif isinstance(target, dict):
            values += [str(v) for v in target.get("values") or []]
    return values


def _seconds(duration: str) -> float | None:
    try:
        return profile._duration(duration).total_seconds()
    except (ValueError, AttributeError):
        return None


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame of ``exc``'s traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else "?"


class Agent:
    """One site's agent. ``cycle()`` does one poll cycle; ``run()`` loops until stopped."""

    def __init__(self, config: Config, *, store: Store | None = None,
                 transport: Transport | None = None) -> None:
        self.config = config
        self.store = store or Store(config.database_path)
        self.transport = transport or Transport(config)
        self.stopping = threading.Event()
        self.ven: dict | None = None
        self.operator = ""
        self.fsp = ""
        self.units: list[str] = []
        self.special_events: dict[str, dict] = {}  # heartbeat/metering/availability event
        self.heartbeat_interval_s: float | None = None
        self._next_heartbeat = 0.0
        self._programs_read_at = time.monotonic()
        self._etags: dict[str, tuple[str, list]] = {}
        self._jwks: dict[str, dict] = {}  # the operator's usable public JWKs by kid
        self._jwks_fetched_at = 0.0
        self._signing: tuple[Ed25519PrivateKey, str] | None = None
        self._recovered = False
        self.online = False  # the last cycle of this process succeeded
        # Set to poll before the interval is over: a stop signal or a push (ven_client.push).
        self.wakeup = threading.Event()
        self.push: Push | None = None
        self._ended_seen: set[tuple] = set()

    # -- identity ------------------------------------------------------------------------

    @property
    def v301(self) -> bool:
        return self.config.openadr_version == "3.0.1"

    def check_signing_key(self) -> None:
        """Refuse to work without a site signing key: acknowledgements must be signed. The
        key itself is read when first needed (:meth:`signing_key`), off the path to the
        first poll."""
        path = self.config.signing_key_path
        if not self.config.signing_kid or not path.exists():
            raise AgentError(f"no site signing key ({path}, kid "
                             f"{self.config.signing_kid!r}): run `ven-client keys generate`")

    def signing_key(self) -> tuple[Ed25519PrivateKey, str]:
        if self._signing is None:
            self.check_signing_key()
            path = self.config.signing_key_path
            self._signing = (jose.load_private_key(path.read_bytes()), self.config.signing_kid)
        return self._signing

    def _get_json(self, path: str, params: dict | None = None) -> Any:
        response = self.transport.request("GET", path, params=params)
        if response.status_code != 200:
            raise AgentError(f"GET {path}: HTTP {response.status_code} {response.text[:300]}")
        return response.json()

    def _pages(self, path: str, params: dict | None = None) -> list:
        found: list = []
        while True:
            page = self._get_json(path, {**(params or {}), "skip": len(found), "limit": PAGE})
            found += page
            if len(page) < PAGE:
                return found

    def discover(self) -> None:
        """Find this client's VEN object, its FSP and operator, and its units."""
        vens = self._pages("vens")
        if self.config.ven_name:
            vens = [v for v in vens if v.get("venName") == self.config.ven_name]
        if len(vens) != 1:
            raise AgentError(f"expected one VEN object for this client, found {len(vens)} "
                             f"(ven_name {self.config.ven_name!r})")
        ven = vens[0]
        labels = _flat_targets(ven.get("targets"))
        fsp_labels = [t.split(":") for t in labels if t.startswith("fsp:") and t.count(":") == 2]
        if fsp_labels:
            self.operator, self.fsp = fsp_labels[0][1], fsp_labels[0][2]
        if self.v301:
            resources = self._pages(f"vens/{ven['id']}/resources")
        else:
            resources = self._pages("resources", {"venID": ven["id"]})
        names = [r["resourceName"] for r in resources if r.get("resourceName")]
        if self.config.dispatch_units:
            names = [n for n in names if n in self.config.dispatch_units]
        self.ven, self.units = ven, sorted(names)
        if self.config.heartbeat_interval_s > 0:
            self.heartbeat_interval_s = self.config.heartbeat_interval_s
        elif self.operator:
            self.heartbeat_interval_s = self._heartbeat_from_programs()
            self._programs_read_at = time.monotonic()
        self.store.put("ven", {"venName": ven.get("venName"), "venID": ven.get("id"),
                               "operator": self.operator, "fsp": self.fsp,
                               "units": self.units})
        logs.log("discovered", ven_name=ven.get("venName"), ven_id=ven.get("id"),
                 operator=self.operator, fsp=self.fsp, units=self.units,
                 heartbeat_interval_s=self.heartbeat_interval_s)

    def refresh_heartbeat_interval(self) -> None:
        """Read the programs again (every ``programs_refresh_s``) and apply a changed
        GB_HEARTBEAT_INTERVAL at once, without a restart: a shorter interval brings the
        next heartbeat forward."""
        if self.config.heartbeat_interval_s > 0 or not self.operator:
            return
        now = time.monotonic()
        if now - self._programs_read_at < self.config.programs_refresh_s:
            return
        interval = self._heartbeat_from_programs()
        self._programs_read_at = now
        if interval == self.heartbeat_interval_s:
            return
        logs.log("heartbeat_interval_changed", was_s=self.heartbeat_interval_s,
                 now_s=interval)
        self.heartbeat_interval_s = interval
        if interval:
            self._next_heartbeat = min(self._next_heartbeat, now + interval)

    def _heartbeat_from_programs(self) -> float | None:
        """The shortest GB_HEARTBEAT_INTERVAL of the operator's product programs (3.1
        renders program attributes; 3.0.1 does not, so it falls back to 60 s)."""
        shortest = None
        prefix = f"GB-{self.operator}-"
        seen_attributes = False
        for program in self._pages("programs"):
            if not str(program.get("programName", "")).startswith(prefix):
                continue
            for attribute in program.get("attributes") or []:
                seen_attributes = True
                if attribute.get("type") == GB_HEARTBEAT_INTERVAL:
                    for value in attribute.get("values") or []:
                        seconds = _seconds(str(value))
                        if seconds and (shortest is None or seconds < shortest):
                            shortest = seconds
        if shortest is None and not seen_attributes:
            return DEFAULT_HEARTBEAT_S
        return shortest

    # -- the operator's keys --------------------------------------------------------------

    def _load_jwks(self) -> None:
        if self.config.jwks_file:
            self._jwks = jose.usable_keys(json.loads(Path(self.config.jwks_file).read_text()))
            return
        response = self.transport.get_public(f"{self.config.vtn_url.rstrip('/')}"
                                             "/.well-known/jwks.json")
        if response.status_code != 200:
            raise Unavailable(f"JWKS: HTTP {response.status_code}", answered=True)
        document = response.json()
        self._jwks = jose.usable_keys(document)
        self._jwks_fetched_at = time.monotonic()
        self.store.put("jwks", document)
        logs.log("jwks_fetched", kids=sorted(self._jwks))

    def key_for(self, kid: str) -> dict | None:
        """The operator's public JWK ``kid``: from the cache, else the JWKS fetched again, else
        None. The JWKS is fetched at most every few seconds: an unknown kid within that
        time raises :class:`profile.KeyNotFetchedYet` (try again later), never None."""
        if not self._jwks:
            cached = self.store.get("jwks")
            if isinstance(cached, dict) and cached and not self.config.jwks_file:
                self._jwks = jose.usable_keys(cached)
        if kid in self._jwks:
            return self._jwks[kid]
        if self.config.jwks_file and self._jwks:
            return None
        if self._jwks and time.monotonic() - self._jwks_fetched_at < JWKS_REFETCH_MIN_S:
            raise profile.KeyNotFetchedYet(kid)
        self._load_jwks()
        return self._jwks.get(kid)

    # -- the cycle ------------------------------------------------------------------------

    def cycle(self) -> None:
        """One poll cycle. Raises Unavailable when the VTN cannot be reached."""
        started = time.monotonic()
        self.check_signing_key()
        if not self._recovered:
            self.recover()
        # Revisions already held go to local control first, before anything that needs the
        # VTN: after a restart during an outage they must not wait for it to come back.
        self.action_received()
        if self.ven is None:
            self.discover()
        self.flush()
        events = self.poll_events()
        self._note_special_events(events)
        for event in events:
            if self.stopping.is_set():
                break
            if profile.is_dispatch(event) and \
                    not str(event.get("eventName", "")).startswith("GB-"):
                self.process_dispatch(event)
        self.ingest_drop_folder()
        self.flush()
        self.refresh_heartbeat_interval()
        self.heartbeat_if_due()
        now = time.time()
        with self.store.transaction() as conn:
            self.store.put("last_poll", now, conn)
            self.store.put("last_poll_ok", now, conn)
            self.store.put("comms_state", "online", conn)
            self.store.put("clock_skew_s", self.transport.skew_s, conn)
            self.store.put("push", self.push.state if self.push else "off", conn)
        first, self.online = not self.online, True
        logs.log("online" if first else "cycle_done", level="info" if first else "debug",
                 events=len(events), pending=self.store.pending_count(),
                 seconds=round(time.monotonic() - started, 4))
        self.report_offline_log()
        # After the poll: on start, dispatches are fetched and handed over before the MQTT
        # binding is discovered (and paho imported); a connection then wakes the next poll.
        self._push_hook()

    # -- outages -------------------------------------------------------------------------

    def went_offline(self) -> None:
        """Note when the VTN was first found unreachable (kept across restarts)."""
        if self.store.get("offline_since") is None:
            self.store.put("offline_since", time.time())
            logs.log("offline", level="warning", held=len(self.store.revisions_in("received")))

    def offline_log(self, since: float, until: float) -> dict:
        """What the agent did on its own between ``since`` and ``until``: every revision
        it held whose service period overlapped the outage, or that it handed to local
        control meanwhile, with what local control answered and whether the dispatch
        ended while the VTN could not be reached."""
        entries = []
        for row in self.store.revisions_between(since, until):
            document = row["document"]
            end = datetime.fromisoformat(document["serviceEnd"].replace("Z", "+00:00"))
            entries.append({
                "dispatchRef": row["dispatch_ref"], "revision": row["revision"],
                "status": document["status"], "unit": document["dispatchUnit"],
                "serviceStart": document["serviceStart"],
                "serviceEnd": document["serviceEnd"], "state": row["state"],
                "outcome": row["outcome"], "actionedAt": _iso(row["actioned_at"]),
                "endedOffline": since <= end.timestamp() <= until})
        return {"offlineFrom": _iso(since), "offlineUntil": _iso(until), "entries": entries}

    def report_offline_log(self) -> None:
        """After an outage, queue the local log of it as a report on the FSP's heartbeat
        event (payload ``GB_OFFLINE_LOG``, one JSON document) and send it."""
        since = self.store.get("offline_since")
        if not isinstance(since, int | float):
            return
        until = time.time()
        log = self.offline_log(float(since), until)
        idempotency_key = str(uuid.uuid4())
        body = {"reportName": f"offline log #{idempotency_key}", "resources": [
            {"resourceName": unit, "intervals": [{"id": 0, "payloads": [
                {"type": GB_OFFLINE_LOG, "values": [json.dumps(log, sort_keys=True)]}]}]}
            for unit in self.units[:1]]}
        with self.store.transaction() as conn:
            if self.units:
                self.store.enqueue(conn, kind="offline_log", path="reports", body=body,
                                   idempotency_key=idempotency_key, needs_event="heartbeat")
            self.store.put("offline_since", None, conn)
        logs.log("offline_log_queued", offline_from=log["offlineFrom"],
                 offline_until=log["offlineUntil"], entries=len(log["entries"]))
        self._flush_quietly()

    def _push_hook(self) -> None:
        """Start MQTT wake-ups once (when configured and offered); refresh their password."""
        if not self.config.push:
            return
        if self.push is None:
            from ven_client.push import Push

            self.push = Push(self, self.wakeup)
            self.push.start()
        else:
            self.push.refresh()

    def recover(self) -> None:
        """After a restart: settle revisions whose handler run was interrupted."""
        for revision in self.store.revisions_in("actioning"):
            logs.log("actioning_interrupted", level="warning", dispatch_ref=revision.dispatch_ref,
                     revision=revision.revision, decision="not re-run; ACTIONED FAILED")
            self._finish(revision, handler.Result("FAILED", INTERRUPTED))
        self._recovered = True

    def poll_events(self) -> list[dict]:
        """Every event this VEN may see, with If-None-Match per page (a 304 reuses the
        page we already hold)."""
        events: list[dict] = []
        params = {"active": "true"} if not self.v301 else {}
        while True:
            query = {**params, "skip": len(events), "limit": PAGE}
            cache_key = json.dumps(query, sort_keys=True)
            cached = self._etags.get(cache_key)
            headers = {"If-None-Match": cached[0]} if cached else None
            response = self.transport.request("GET", "events", params=query, headers=headers)
            if response.status_code == 304 and cached:
                page = cached[1]
            elif response.status_code == 200:
                page = response.json()
                if response.headers.get("ETag"):
                    self._etags[cache_key] = (response.headers["ETag"], page)
            else:
                raise AgentError(f"GET events: HTTP {response.status_code} "
                                 f"{response.text[:300]}")
            events += page
            if len(page) < PAGE:
                return events

    def _note_special_events(self, events: list[dict]) -> None:
        for kind in REPORT_KINDS:
            name = f"GB-{self.operator}-{kind}/{self.fsp}"
            found = next((e for e in events if e.get("eventName") == name), None)
            if found and self.special_events.get(kind.lower(), {}).get("id") != found["id"]:
                self.special_events[kind.lower()] = {"id": found["id"],
                                                     "programID": found.get("programID")}
                self.store.put(f"{kind.lower()}_event", self.special_events[kind.lower()])

    # -- dispatches -----------------------------------------------------------------------

    def process_dispatch(self, event: dict) -> None:
        said = profile.claim(event)
        highest = self.store.highest_revision(said.operator, said.dispatch_ref)
        if said.revision is not None and said.revision <= highest:
            return  # held already (or older than what we hold: ignore, profile section 3)
        try:
            document = profile.verify_dispatch(event, self.key_for, fsp=self.fsp,
                                               units=set(self.units))
        except profile.Refusal as refusal:
            self.refuse(event, said, str(refusal))
            return
        except profile.KeyNotFetchedYet as unknown:
            logs.log("dispatch_deferred", event_id=said.event_id, kid=str(unknown),
                     reason="signing key not in the JWKS fetched moments ago; retrying")
            return
        if self._ended(document):
            return
        revision = Revision(
            operator=document["networkOperatorId"], dispatch_ref=document["dispatchRef"],
            revision=document["revision"], event_id=str(event["id"]),
            program_id=str(event.get("programID") or ""), document=document, jws=said.jws,
            state="received", outcome=None, reason=None)
        with self.store.transaction() as conn:
            self.store.add_revision(conn, operator=revision.operator,
                                    dispatch_ref=revision.dispatch_ref,
                                    revision=revision.revision, event_id=revision.event_id,
                                    program_id=revision.program_id, document=document,
                                    jws=said.jws)
            self._enqueue_ack(conn, revision, acks.read_back(document, stage=RECEIVED))
        logs.log("dispatch_received", dispatch_ref=revision.dispatch_ref,
                 revision=revision.revision, status=document["status"],
                 unit=document["dispatchUnit"], urgency=document.get("urgency"))
        self._flush_quietly()
        self.action(revision)

    def _ended(self, document: dict) -> bool:
        """A revision whose service period ended before we first saw it is history (a
        3.0.1 poll lists past events too): logged once, neither actioned nor acknowledged."""
        try:
            end = datetime.fromisoformat(document["serviceEnd"].replace("Z", "+00:00"))
        except (KeyError, ValueError, AttributeError):
            return False
        now = time.time() + (self.transport.skew_s or 0.0)  # the VTN's idea of now
        if end.timestamp() > now:
            return False
        marker = (document["networkOperatorId"], document["dispatchRef"], document["revision"])
        if marker not in self._ended_seen:
            self._ended_seen.add(marker)
            logs.log("dispatch_ignored_ended", dispatch_ref=document["dispatchRef"],
                     revision=document["revision"], service_end=document["serviceEnd"])
        return True

    def _report_body(self, *, event_id: str, program_id: str, name: str, unit: str,
                     payloads: list[dict]) -> dict:
        body = {"eventID": event_id, "clientName": self._client_name(), "reportName": name,
                "resources": [{"resourceName": unit, "intervals": [
                    {"id": 0, "payloads": payloads}]}]}
        if self.v301:
            body["programID"] = program_id
        return body

    def _client_name(self) -> str:
        return str((self.ven or {}).get("venName") or self.config.ven_name or
                   self.config.client_id)

    def _enqueue_ack(self, conn: sqlite3.Connection, revision: Revision, signed: dict) -> None:
        key, kid = self.signing_key()
        idempotency_key = str(uuid.uuid4())
        body = self._report_body(
            event_id=revision.event_id, program_id=revision.program_id,
            name=f"ack {revision.dispatch_ref} r{revision.revision} {signed['stage']} "
                 f"#{idempotency_key}",
            unit=revision.document["dispatchUnit"],
            payloads=acks.ack_payloads(signed, key, kid))
        self.store.enqueue(conn, kind=f"ack_{signed['stage'].lower()}", path="reports",
                           body=body, idempotency_key=idempotency_key)

    def refuse(self, event: dict, said: profile.Claim, reason: str) -> None:
        fingerprint = profile.fingerprint(event)
        if self.store.refused(fingerprint):
            return
        key, kid = self.signing_key()
        unit = said.unit if said.unit else (self.units[0] if self.units else "unknown")
        signed = profile.refusal_document(said, fsp=self.fsp, unit=unit, reason=reason)
        idempotency_key = str(uuid.uuid4())
        body = self._report_body(
            event_id=said.event_id, program_id=said.program_id,
            name=f"refused {said.dispatch_ref} r{said.revision} #{idempotency_key}",
            unit=unit, payloads=acks.ack_payloads(signed, key, kid))
        with self.store.transaction() as conn:
            self.store.add_refusal(conn, fingerprint=fingerprint, event_id=said.event_id,
                                   dispatch_ref=said.dispatch_ref, revision=said.revision,
                                   reason=reason)
            self.store.enqueue(conn, kind="ack_refused", path="reports", body=body,
                               idempotency_key=idempotency_key)
        logs.log("dispatch_refused", level="error", event_id=said.event_id,
                 dispatch_ref=said.dispatch_ref, revision=said.revision, reason=reason)

    def action_received(self) -> None:
        """Run the handler for revisions received but not started (after a restart)."""
        for revision in self.store.revisions_in("received"):
            if self.stopping.is_set():
                return
            self.action(revision)

    def action(self, revision: Revision) -> None:
        self.store.mark_actioning(revision)
        instruction = {"kind": "GB_DISPATCH", "eventID": revision.event_id,
                       "programID": revision.program_id, "receivedAt": _iso(time.time()),
                       "clockSkewSeconds": self.transport.skew_s,
                       "dispatch": revision.document}
        started = time.monotonic()
        logs.log("handler_started", dispatch_ref=revision.dispatch_ref,
                 revision=revision.revision, status=revision.document["status"])
        result = handler.run(self.config, instruction)
        logs.log("handler_finished", level="info" if result.outcome == "ACCEPTED" else "warning",
                 dispatch_ref=revision.dispatch_ref, revision=revision.revision,
                 outcome=result.outcome, reason=result.reason,
                 seconds=round(time.monotonic() - started, 3))
        self._finish(revision, result)
        self._flush_quietly()

    def _finish(self, revision: Revision, result: handler.Result) -> None:
        signed = acks.read_back(revision.document, stage=ACTIONED, outcome=result.outcome,
                                reason=result.reason if result.outcome == "FAILED" else "")
        with self.store.transaction() as conn:
            self.store.mark_actioned(conn, revision, result.outcome, result.reason)
            self._enqueue_ack(conn, revision, signed)

    # -- the outbox -----------------------------------------------------------------------

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Unavailable as exc:
            logs.log("send_deferred", level="warning", error=str(exc),
                     pending=self.store.pending_count())

    def flush(self) -> None:
        """Send pending messages in order; stop at the first the VTN cannot take now."""
        for message in self.store.pending():
            body = message.body
            if message.needs_event:
                event = self.special_events.get(message.needs_event)
                if event is None:
                    continue  # held until the VTN offers the event
                body = {**body, "eventID": event["id"], "clientName": self._client_name()}
                if self.v301:
                    body["programID"] = event["programID"]
                self.store.fill_body(message.id, body)
            if message.uncertain and self._delivered_before(message, body):
                self.store.mark_sent(message.id, None)
                logs.log("message_found_delivered", kind=message.kind,
                         idempotency_key=message.idempotency_key)
                continue
            self._send(message, body)

    def _send(self, message: OutboxMessage, body: dict) -> None:
        self.store.mark_attempt(message.id)
        try:
            response = self.transport.request(
                message.method, message.path, json=body,
                headers={"Idempotency-Key": message.idempotency_key})
        except Unavailable as exc:
            if exc.answered:
                self.store.mark_unsent(message.id, str(exc))
            else:
                self.store.mark_error(message.id, str(exc))
            raise
        except AuthError as exc:
            self.store.mark_unsent(message.id, str(exc))
            raise
        if 200 <= response.status_code < 300:
            try:
                report_id = response.json().get("id")
            except (ValueError, AttributeError):
                report_id = None
            self.store.mark_sent(message.id, report_id)
            intake = self._intake(message, report_id)
            counts: dict[str, Any] = {k: intake.get(k) for k in INTAKE_COUNTS} if intake else {}
            logs.log("message_sent", kind=message.kind, idempotency_key=message.idempotency_key,
                     report_id=report_id, attempts=message.attempts + 1,
                     replayed=response.headers.get("Idempotent-Replayed") == "true",
                     **counts)
            self._warn_rejected_rows(message, report_id, intake)
        else:
            error = f"HTTP {response.status_code} {response.text[:500]}"
            self.store.mark_rejected(message.id, error)
            logs.log("message_rejected", level="error", kind=message.kind,
                     idempotency_key=message.idempotency_key, error=error)

    def _intake(self, message: OutboxMessage, report_id: str | None) -> dict | None:
        """What the VTN made of a readings or availability report (its intake: rows
        stored, duplicates, corrections, rejected with reasons); None for other messages
        or when the VTN cannot say now (the report itself is delivered either way)."""
        if message.kind not in (reports.METERING, reports.AVAILABILITY) or not report_id:
            return None
        try:
            response = self.transport.request(
                "GET", f"{self.config.vtn_url.rstrip('/')}/dispatch/api/v1/report-intakes",
                params={"report": report_id}, absolute=True)
            error: object = response.status_code
            found = response.json() if response.status_code == 200 else None
        except (Unavailable, AuthError, ValueError) as exc:
            found, error = None, exc
        if not isinstance(found, list) or not found or not isinstance(found[0], dict):
            logs.log("report_intake_unknown", level="warning", kind=message.kind,
                     report_id=report_id, error=str(error))
            return None
        return found[0]  # newest first: a re-sent report is examined again

    @staticmethod
    def _warn_rejected_rows(message: OutboxMessage, report_id: str | None,
                            intake: dict | None) -> None:
        """Each row the VTN refused, with its reason: delivered, but not taken."""
        problems = (intake or {}).get("problems") or []
        for problem in problems[:MAX_ROW_WARNINGS]:
            if isinstance(problem, dict):
                logs.log("report_row_rejected", level="warning", kind=message.kind,
                         report_id=report_id, unit=problem.get("unit"),
                         type=problem.get("type"), start=problem.get("start"),
                         outcome=problem.get("outcome"), reason=problem.get("detail"))
        if len(problems) > MAX_ROW_WARNINGS:
            logs.log("report_row_rejected", level="warning", kind=message.kind,
                     report_id=report_id, more=len(problems) - MAX_ROW_WARNINGS,
                     reason="further rows rejected; see GET /dispatch/api/v1/report-intakes"
                            f"?report={report_id}")

    def _delivered_before(self, message: OutboxMessage, body: dict) -> bool:
        """Whether a report from an attempt that got no answer is at the VTN already
        (found by the idempotency key in its reportName)."""
        if message.path != "reports" or not body.get("eventID"):
            return False
        marker = f"#{message.idempotency_key}"
        reports_seen = self._pages("reports", {"eventID": body["eventID"],
                                               "clientName": body.get("clientName")})
        return any(str(r.get("reportName", "")).endswith(marker) for r in reports_seen)

    # -- heartbeats, readings, availability -----------------------------------------------

    def heartbeat_if_due(self) -> None:
        event = self.special_events.get("heartbeat")
        if not event or not self.heartbeat_interval_s or not self.units:
            return
        now = time.monotonic()
        if now < self._next_heartbeat:
            return
        body = {"eventID": event["id"], "clientName": self._client_name(),
                "reportName": "heartbeat",
                "resources": [{"resourceName": unit, "intervals": [{"id": 0, "payloads": []}]}
                              for unit in self.units]}
        if self.v301:
            body["programID"] = event["programID"]
        # Heartbeats are not queued: a late heartbeat says nothing true about now.
        response = self.transport.request("POST", "reports", json=body)
        if 200 <= response.status_code < 300:
            self._next_heartbeat = now + self.heartbeat_interval_s
            self.store.put("last_heartbeat", time.time())
            logs.log("heartbeat_sent", next_in_s=self.heartbeat_interval_s)
        else:
            self._next_heartbeat = now + self.heartbeat_interval_s
            logs.log("heartbeat_refused", level="error", status=response.status_code,
                     error=response.text[:300])

    def ingest_drop_folder(self) -> int:
        """Queue every CSV waiting in the drop folder; returns the files queued."""
        if not self.config.drop_dir:
            return 0
        folder = Path(self.config.drop_dir)
        queued = 0
        for path in reports.drop_files(folder):
            data = path.read_bytes()
            digest = reports.content_hash(data)
            if self.store.ingested(digest):
                self._move(path, folder / "done")  # queued before a crash; finish the move
                continue
            try:
                parsed = reports.parse_file(path, data.decode("utf-8-sig"),
                                            set(self.units) if self.units else None)
            except (reports.CsvError, UnicodeDecodeError) as exc:
                target = self._move(path, folder / "failed")
                target.with_name(target.name + ".error").write_text(f"{exc}\n")
                logs.log("drop_file_failed", level="error", file=path.name, error=str(exc))
                continue
            signed = [self._signed_report(parsed.kind, body) for body in parsed.reports]
            with self.store.transaction() as conn:
                for body in signed:
                    self.store.enqueue(conn, kind=parsed.kind, path="reports", body=body,
                                       needs_event=parsed.kind)
                self.store.add_ingested(conn, content_hash=digest, name=path.name,
                                        rows=parsed.rows)
            self._move(path, folder / "done")
            queued += 1
            logs.log("drop_file_queued", file=path.name, kind=parsed.kind, rows=parsed.rows,
                     reports=len(parsed.reports))
        return queued

    def _signed_report(self, kind: str, body: dict) -> dict:
        """A declarations or readings report signed with the site key, once, when queued:
        a retry resends the same bytes (and the same Idempotency-Key)."""
        key, kid = self.signing_key()
        return report_signing.sign_report(body, kind=kind.upper(), fsp=self.fsp,
                                          key=key, kid=kid)

    @staticmethod
    def _move(path: Path, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        if target.exists():
            target = folder / f"{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}"
        shutil.move(str(path), target)
        return target

    # -- running --------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        """Poll until SIGTERM/SIGINT (or one cycle with ``once``); returns an exit code."""
        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)
        if not once:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        logs.log("agent_started", pid=os.getpid(), vtn=self.config.vtn_url,
                 version=self.config.openadr_version, mtls=bool(self.config.client_cert),
                 state=str(self.config.database_path))
        code = 0
        key_loaded = False
        while not self.stopping.is_set():
            try:
                self.cycle()
                if not key_loaded:
                    # After the first poll, so that start-up stays short: the signing
                    # libraries and the key (a key that cannot be read fails here).
                    if not once:
                        jose.preload()
                    self.signing_key()
                    key_loaded = True
                backoff.success()
                delay = poll_delay(self.config.poll_interval_s, self.config.poll_jitter)
                code = 0
            except (Unavailable, AuthError, AgentError) as exc:
                delay = backoff.failure(getattr(exc, "retry_after", None))
                code = 1
                self.online = False
                if isinstance(exc, Unavailable):
                    self.went_offline()
                    self.action_received()  # held instructions still go to local control
                with self.store.transaction() as conn:
                    self.store.put("last_poll", time.time(), conn)
                    self.store.put("comms_state", "backoff", conn)
                    self.store.put("last_error", str(exc), conn)
                logs.log("cycle_failed", level="warning" if isinstance(exc, Unavailable)
                         else "error", error=str(exc), kind=type(exc).__name__,
                         failures=backoff.failures, retry_in_s=round(delay, 2),
                         pending=self.store.pending_count())
                if isinstance(exc, AgentError):
                    self.ven = None  # discover again next time
            except Exception as exc:  # a bug or a surprise: log it, back off, keep going
                delay = backoff.failure()
                code, self.online = 1, False
                logs.log("cycle_error", level="error", error=f"{type(exc).__name__}: {exc}",
                         where=_where(exc), failures=backoff.failures,
                         retry_in_s=round(delay, 2))
                self.ven = None
            if once:
                break
            if self.wakeup.wait(delay) and not self.stopping.is_set():
                logs.log("woken", level="debug")
            self.wakeup.clear()
        logs.log("agent_stopped", pending=self.store.pending_count())
        if self.push is not None:
            self.push.stop()
        self.transport.close()
        self.store.close()
        return code

    def _on_signal(self, signum: int, frame: object) -> None:
        logs.log("stopping", signal=signal.Signals(signum).name)
        self.stopping.set()
        self.wakeup.set()
