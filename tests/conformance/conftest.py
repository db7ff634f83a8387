"""Fixtures of the conformance sandbox's end-to-end modules: a VTN of the module's own
with the sandbox on, and an agent world on it for each test.

The end-to-end tests are split over several modules (``test_conformance_e2e*.py``), each
with its own VTN, so their runs (tens of seconds each, mostly waiting on real agents and
deadlines) spread over the parallel workers instead of queueing on one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.agent import AgentWorld
from tests.fixtures.requirements import starts_processes
from tests.fixtures.server import E2EDatabase, VtnServer


@pytest.fixture(scope="module")
@starts_processes
def sandbox_vtn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VtnServer]:
    """A VTN of its own: conformance on, last-seen written at once, comms lost after
    0.05 x the heartbeat interval (3 s for MW_DISPATCH sites), and room for every site
    its module onboards from one address within the hour (the limit itself is tested in
    test_conformance_api)."""
    workdir = tmp_path_factory.mktemp("conformance_vtn")
    database = E2EDatabase(os.environ.get("DATABASE_URL", ""), workdir)
    server = VtnServer(workdir, database)
    server.env.update({
        "CONFORMANCE_FAULTS_ENABLED": "true", "CONFORMANCE_SELF_SERVICE": "true",
        "CONFORMANCE_OPERATOR": "ENWL", "VTN_PKI_DIR": str(server.pki_dir),
        "DISPATCH_LAST_SEEN_RESOLUTION_SECONDS": "0.2", "DISPATCH_COMMS_GRACE_FACTOR": "0.05",
        "CONFORMANCE_ONBOARD_RATE_PER_HOUR": "50",
    })
    try:
        server.prepare()
        server.start()
        yield server
    finally:
        server.stop(graceful=False)
        database.drop()


@pytest.fixture
def world(sandbox_vtn: VtnServer, tmp_path: Path) -> Iterator[AgentWorld]:
    world = AgentWorld(server=sandbox_vtn, root=tmp_path)
    try:
        yield world
    finally:
        world.close()
