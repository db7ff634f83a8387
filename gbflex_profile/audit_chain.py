"""The dispatch audit log's hash chain and its offline verifier (no Django: it installs
with this package alone, so anyone holding an export can check it).

Every entry has a body (sequence, time, kind, subject, jws, payload) and a link::

    bodyHash = SHA-256(canonical(body))
    hash     = SHA-256(canonical({"sequence": n, "prevHash": prev, "bodyHash": bodyHash}))

where ``canonical`` is RFC 8785 JSON and hashes are lower-case hex; the first entry's
``prevHash`` is :data:`GENESIS`. Because the link covers the body only through its
digest, an export can prove the chain is unbroken across entries of other dispatches
by showing just their ``sequence``, ``prevHash`` and ``bodyHash`` (no content).

An export (``manage.py dispatch audit-export``) is checked offline with::

    python -m gbflex_profile.audit_chain verify FILE.json    (or: gbflex-audit verify FILE.json)

which recomputes every hash, follows the links from the first exported entry to the
last, and verifies every signature: operator signatures of ``revision_issued`` entries
against ``operatorKeys``, FSP signatures of accepted ``ack_recorded`` entries against
``siteKeys`` (and that a signature recorded as invalid or of an unknown key indeed does
not verify), and the site's signatures of the availability declarations and meter
readings it sent for the dispatch's unit over its window (``declarations_recorded`` and
``readings_recorded`` entries) against ``siteKeys``, each over exactly the statement the
entry records. Exit status 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from gbflex_profile.canonical import canonical_json
from gbflex_profile.jose import SignatureError, verify

GENESIS = "0" * 64
EXPORT_FORMAT = "gb-dispatch-audit-export/1"
BODY_FIELDS = ("sequence", "time", "kind", "subject", "jws", "payload")
# Acknowledgement outcomes reached only after the FSP's signature verified.
SIGNED_OUTCOMES = {"accepted", "read_back_mismatch", "stale_revision", "duplicate"}
# Intakes of a site's availability and meter-reading reports: signed by the site, or not.
INTAKE_KINDS = ("declarations_recorded", "readings_recorded")
# Entries that record the VTN's own observations and carry no signature.
UNSIGNED_KINDS = ("comms_changed", "comms_loss_confirmed", "unit_capability_changed",
                  "signed_reports_changed")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def body_hash(body: Mapping) -> str:
    """Digest of an entry's body (only :data:`BODY_FIELDS` count)."""
    return sha256_hex(canonical_json({name: body[name] for name in BODY_FIELDS}))


def link_hash(sequence: int | None, prev_hash: str, digest: str) -> str:
    return sha256_hex(canonical_json({"sequence": sequence, "prevHash": prev_hash,
                                      "bodyHash": digest}))


def entry_hash(body: Mapping, prev_hash: str) -> str:
    """The hash of an entry whose body is ``body`` following ``prev_hash``."""
    return link_hash(body["sequence"], prev_hash, body_hash(body))


def verify_links(links: Sequence[Mapping]) -> list[str]:
    """Problems with a run of links (each with sequence, prevHash, hash and either a full
    body or a ``bodyHash``), in sequence order; empty when the run is an unbroken chain."""
    problems: list[str] = []
    previous: Mapping | None = None
    for link in links:
        sequence = link.get("sequence")
        digest = body_hash(link) if "payload" in link else link.get("bodyHash", "")
        if link_hash(sequence, link.get("prevHash", ""), digest) != link.get("hash"):
            problems.append(f"entry {sequence}: hash does not match its contents")
        if previous is None:
            if sequence == 1 and link.get("prevHash") != GENESIS:
                problems.append("entry 1 does not start from the genesis hash")
        else:
            if sequence != previous["sequence"] + 1:
                problems.append(f"entry {sequence} does not follow entry {previous['sequence']}")
            if link.get("prevHash") != previous.get("hash"):
                problems.append(f"entry {sequence} does not link to entry "
                                f"{previous['sequence']}")
        previous = link
    return problems


def _verifies(token: str, keys: Mapping) -> tuple[dict | None, str]:
    try:
        return verify(token, keys), ""
    except SignatureError as exc:
        return None, str(exc)


def _revoked_by(kid: str | None, history: Sequence[Mapping], at: str) -> bool:
    """Whether site key ``kid`` had been revoked at ``at`` (timestamps in one format)."""
    return any(item.get("kid") == kid and item.get("revokedAt") is not None
               and item["revokedAt"] <= at for item in history)


def verify_signatures(entry: Mapping, operator_keys: Mapping, site_keys: Mapping,
                      site_key_history: Sequence[Mapping] = ()) -> list[str]:
    """Problems with the signature an entry records (empty when it is as recorded).

    ``site_key_history`` (kid, created, revokedAt) tells a key revoked before an
    acknowledgement arrived, which the VTN records as ``unknown_key`` although the
    signature itself verifies."""
    sequence, kind, payload = entry["sequence"], entry["kind"], entry["payload"]
    if kind == "revision_issued":
        document, error = _verifies(entry["jws"], operator_keys)
        if document is None:
            return [f"entry {sequence}: operator signature: {error}"]
        if document != payload:
            return [f"entry {sequence}: the signed document differs from the payload"]
        return []
    if kind == "ack_recorded":
        outcome = payload.get("outcome")
        signed, error = _verifies(entry["jws"], site_keys) if entry["jws"] else (None, "none")
        revoked = _revoked_by(entry.get("subject", {}).get("kid"), site_key_history,
                              str(payload.get("receivedAt")))
        if outcome in SIGNED_OUTCOMES:
            if signed is None:
                return [f"entry {sequence}: FSP signature: {error}"]
            if revoked:
                return [f"entry {sequence}: signed with a key revoked before it arrived"]
            if signed != payload.get("signed"):
                return [f"entry {sequence}: the FSP-signed document differs from the payload"]
        elif signed is not None and not (outcome == "unknown_key" and revoked):
            return [f"entry {sequence}: recorded as {outcome} but the signature verifies"]
        return []
    if kind in INTAKE_KINDS:
        return _intake_problems(entry, site_keys, site_key_history)
    if kind in UNSIGNED_KINDS:
        return [f"entry {sequence}: a {kind} entry carries a signature"] if entry["jws"] else []
    return [f"entry {sequence}: unknown kind {kind!r}"]


def _intake_problems(entry: Mapping, site_keys: Mapping,
                     site_key_history: Sequence[Mapping]) -> list[str]:
    """A report intake: unsigned, or signed by a key of the site (unrevoked when it
    arrived) over exactly the statement the entry records."""
    sequence, payload = entry["sequence"], entry["payload"]
    if not entry["jws"]:
        if payload.get("signed") is not None:
            return [f"entry {sequence}: records a signed statement but no signature"]
        return []
    signed, error = _verifies(entry["jws"], site_keys)
    if signed is None:
        return [f"entry {sequence}: site signature: {error}"]
    if _revoked_by(entry.get("subject", {}).get("kid"), site_key_history,
                   str(payload.get("receivedAt"))):
        return [f"entry {sequence}: signed with a key revoked before it arrived"]
    if signed != payload.get("signed"):
        return [f"entry {sequence}: the site-signed statement differs from the payload"]
    return []


def verify_export(export: Mapping) -> list[str]:
    """Every problem with an audit export; empty when the chain and signatures hold."""
    if export.get("format") != EXPORT_FORMAT:
        return [f"not a {EXPORT_FORMAT} document"]
    entries = sorted(export.get("entries", []), key=lambda e: e["sequence"])
    if not entries:
        return ["the export holds no entries"]
    by_sequence = {e["sequence"]: e for e in entries}
    links = [by_sequence.get(link["sequence"], link) for link in export.get("links", [])]
    for entry in entries:
        if entry["sequence"] not in {link["sequence"] for link in links}:
            links.append(entry)
    links.sort(key=lambda link: link["sequence"])
    problems = verify_links(links)
    site = export.get("site") or {}
    for entry in entries:
        subject = entry.get("subject", {})
        if entry.get("kind") in INTAKE_KINDS:
            if (subject.get("networkOperatorId"), subject.get("fsp"), subject.get("site")) != (
                    export.get("networkOperatorId"), site.get("fsp"), site.get("site")):
                problems.append(f"entry {entry['sequence']}: about another site")
        elif (subject.get("networkOperatorId"), subject.get("dispatchRef")) != (
                export.get("networkOperatorId"), export.get("dispatchRef")):
            problems.append(f"entry {entry['sequence']}: about another dispatch")
        problems += verify_signatures(entry, export.get("operatorKeys", {"keys": []}),
                                      export.get("siteKeys", {"keys": []}),
                                      export.get("siteKeyHistory", []))
    head = export.get("headHash")
    if head is not None and links[-1].get("hash") != head:
        problems.append("the last link is not the stated head of the chain")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gbflex-audit",
                                     description="Verify a GB dispatch audit export offline.")
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("verify", help="check the hash chain and every signature")
    check.add_argument("file", type=Path)
    arguments = parser.parse_args(argv)
    export = json.loads(arguments.file.read_text(encoding="utf-8"))
    problems = verify_export(export)
    if problems:
        for problem in problems:
            print(f"FAIL: {problem}")
        return 1
    print(f"OK: {len(export['entries'])} entries of {export['networkOperatorId']}/"
          f"{export['dispatchRef']}, chain {export['entries'][0]['sequence']}.."
          f"{export['links'][-1]['sequence'] if export.get('links') else '?'} verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
