"""The README's curl walkthrough and the ready-to-run report and subscription examples of
docs/openadr-api.md, run as written (twice) against a served ``manage.py sandbox``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.parallel import free_port
from tests.fixtures.requirements import need_executable, starts_processes
from tests.fixtures.server import stop_process, wait_until_serving

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)


def section(path: Path, heading: str) -> str:
    """The text of the ``## heading`` section of a Markdown file."""
    text = path.read_text()
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def walkthrough_script() -> str:
    """The walkthrough's shell blocks after the one that starts the sandbox, then the
    ready-to-run ones, in order: one shell, as a reader pastes them."""
    readme = FENCE.findall(section(ROOT / "README.md", "Walkthrough with curl"))
    assert readme[0].strip().startswith("make run"), readme[0]
    ready = FENCE.findall(section(ROOT / "docs" / "openadr-api.md",
                                  "Ready-to-run: reports and subscriptions"))
    assert len(readme) == 2 and len(ready) == 2
    # A failure half-way leaves no receiver running.
    return ("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
            + "\n".join(readme[1:] + ready))


@pytest.fixture
@starts_processes
def sandbox(tmp_path):
    """``manage.py sandbox`` served on a port of its own, its JSON in ``sandbox.json`` and
    its state in ``var/`` of the folder the walkthrough runs in (SQLite, like `make run`)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "OPENADR_SPEC_DIR"}}
    env |= {"VTN_VAR_DIR": str(tmp_path / "var"), "VTN_PUBLIC_URL": f"https://127.0.0.1:{port}"}
    output, log = tmp_path / "sandbox.json", tmp_path / "sandbox.log"
    with output.open("wb") as out, log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "sandbox", "--no-fleet",
             "--bind", f"127.0.0.1:{port}"],
            cwd=tmp_path, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        wait_until_serving(process, f"https://127.0.0.1:{port}/healthz",
                           str(tmp_path / "var" / "pki" / "ca.pem"), log, timeout=300)
        yield tmp_path, port, output
    finally:
        stop_process(process)


def test_the_walkthrough_and_the_ready_examples_run_as_written_twice(sandbox):
    need_executable("curl", "apt-get install curl")
    folder, port, output = sandbox
    receiver_port = free_port()
    script = (walkthrough_script()
              .replace("/tmp/sandbox.json", str(output))
              .replace("127.0.0.1:8443", f"127.0.0.1:{port}")
              .replace("9443", str(receiver_port)))

    runs = []
    for _ in range(2):  # names carry a suffix of the time: the second run creates anew
        result = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True,
                                text=True, timeout=180)
        assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr and '"status":4' not in result.stdout
        runs.append(result.stdout)
        time.sleep(1.1)

    for stdout in runs:
        # The VEN sees the walkthrough's event, its report is read back by the business
        # logic, the subscription is listed and its receiver got the new event.
        assert '"eventName":"walkthrough-' in stdout
        assert '"reportName":"usage-' in stdout
        assert '"callbackUrl":"https://127.0.0.1:' in stdout
        assert re.search(r"receiver got: CREATE EVENT notified-\d{14}\n", stdout), stdout
    report = json.JSONDecoder().raw_decode(output.read_text())[0]
    assert report["clients"]["ven"]["ven_name"] == "demo-fsp-north"
