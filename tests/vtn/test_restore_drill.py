"""The restore drill of docs/operations.md ("Backup and restore"), performed for real:
a VTN on PostgreSQL (a cluster of the test's own) with an FSP agent running and a
dispatch acknowledged; back up the database (pg_dump), the PKI directory (CA and server
keys) and the secrets; lose the database; restore into a fresh database; start the VTN
on it. The audit chain still verifies with the same head, the restored signing key signs
new dispatches, and the agent, never reconfigured, carries on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.agent import AgentWorld, accepted, wait_for
from tests.fixtures.postgres import OwnCluster
from tests.fixtures.server import ROOT, E2EDatabase, VtnServer, _admin_connection, _with_database

pytestmark = [pytest.mark.slow]


def both_acks(world: AgentWorld, reference: str):
    def check():
        acks = world.acknowledgements(reference).get(1, [])
        return acks if accepted(acks, "received") and accepted(acks, "actioned") else None
    return check


def audit_export(server: VtnServer, reference: str, out: Path) -> dict:
    summary = json.loads(server.manage("dispatch", "audit-export", reference, "--operator",
                                       "NGED-EM", "--out", str(out)).stdout)
    verified = subprocess.run([sys.executable, "-m", "gbflex_profile.audit_chain", "verify",
                               str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return summary


def test_backup_restore_drill(own_postgres: OwnCluster, tmp_path):
    server = VtnServer(tmp_path / "vtn", E2EDatabase(own_postgres.url, tmp_path))
    server.prepare()
    server.start()
    world = AgentWorld(server=server, root=tmp_path / "sites")
    backup = tmp_path / "backup"
    backup.mkdir()
    restored_name = None
    try:
        site = world.onboard()
        agent = world.start_agent(site)
        before = world.issue(site)
        wait_for(both_acks(world, before["reference"]), 30, "the dispatch before the backup")
        head_before = audit_export(server, before["reference"], tmp_path / "before.json")

        # 1. Back up: the database, the PKI directory, the secrets (from the secret store).
        dump = backup / "vtn.dump"
        subprocess.run([own_postgres.tool("pg_dump"), "--format=custom", "--no-owner",
                        "--dbname", server.database.url, "--file", str(dump)],
                       check=True, capture_output=True, timeout=120)
        shutil.copytree(server.pki_dir, backup / "pki")
        secrets = {k: server.env[k] for k in ("SECRET_KEY",)}

        # 2. The disaster: the VTN stops, its database and PKI directory are lost.
        server.stop()
        server.database.drop()
        shutil.rmtree(server.pki_dir)

        # 3. Restore into a fresh database, put the PKI back, start with the same secrets.
        restored_name = "vtn_restored"
        with _admin_connection(own_postgres.url) as conn:
            conn.execute(f'CREATE DATABASE "{restored_name}"')
        restored_url = _with_database(own_postgres.url, restored_name)
        subprocess.run([own_postgres.tool("pg_restore"), "--no-owner", "--exit-on-error",
                        "--dbname", restored_url, str(dump)], check=True, capture_output=True,
                       timeout=300)
        shutil.copytree(backup / "pki", server.pki_dir)
        server.env.update(secrets, DATABASE_URL=restored_url)
        server.manage("migrate", "--no-input", "-v", "0")  # nothing to do: all were applied
        server.start()

        # 4. Check: the audit chain verifies with the same head; the agent carries on.
        assert audit_export(server, before["reference"], tmp_path / "after.json")[
            "headHash"] == head_before["headHash"]
        after = world.issue(site)
        wait_for(both_acks(world, after["reference"]), 60, "the dispatch after the restore")
        audit_export(server, after["reference"], tmp_path / "new.json")
        assert [h["dispatch"]["dispatchRef"] for h in site.handled()] == [
            before["reference"], after["reference"]]
        acks = world.acknowledgements(before["reference"])[1]
        assert sorted(a["stage"] for a in acks) == ["actioned", "received"]
        assert agent.poll() is None
    finally:
        world.close()
        server.stop(graceful=False)
        if restored_name and own_postgres.running():
            with _admin_connection(own_postgres.url) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{restored_name}" WITH (FORCE)')
