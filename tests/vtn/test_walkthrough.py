"""What a newcomer does first, against a served ``manage.py sandbox`` (what `make run`
serves): the README's curl walkthrough and the ready-to-run report and subscription
examples of docs/openadr-api.md, run as written (twice), and the demo in a browser from the
landing page through every console section."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.test_console_browser import shot
from tests.fixtures.console import totp_code
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


@contextlib.contextmanager
def served_sandbox(folder: Path, *args: str) -> Iterator[tuple[int, Path]]:
    """``manage.py sandbox ARGS`` served on a port of its own, its JSON in ``sandbox.json``
    and its state in ``var/`` of ``folder`` (SQLite, like `make run`)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "OPENADR_SPEC_DIR"}}
    env |= {"VTN_VAR_DIR": str(folder / "var"), "VTN_PUBLIC_URL": f"https://127.0.0.1:{port}"}
    output, log = folder / "sandbox.json", folder / "sandbox.log"
    with output.open("wb") as out, log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "sandbox", *args,
             "--bind", f"127.0.0.1:{port}"],
            cwd=folder, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        wait_until_serving(process, f"https://127.0.0.1:{port}/healthz",
                           str(folder / "var" / "pki" / "ca.pem"), log, timeout=600)
        yield port, output
    finally:
        stop_process(process)


@pytest.fixture
@starts_processes
def sandbox(tmp_path):
    """The sandbox without its demo fleet: enough for the API walkthrough."""
    with served_sandbox(tmp_path, "--no-fleet") as (port, output):
        yield tmp_path, port, output


@pytest.fixture
@starts_processes
def demo(tmp_path):
    """The sandbox exactly as `make run` serves it: demo fleet, agents and history."""
    with served_sandbox(tmp_path) as (port, output):
        yield port, json.JSONDecoder().raw_decode(output.read_text())[0]


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


def test_a_newcomer_walks_the_demo_from_the_landing_page_through_every_console_section(
        demo, browser):
    """`make run`'s demo in a browser: the landing page, the console user it printed (password
    and TOTP), every section of the navigation, the settled demo statement with its chart
    and a past dispatch with its acknowledgements. Screenshots: ``demo-*``."""
    port, printed = demo
    base = f"https://127.0.0.1:{port}"
    page = browser.new_page()
    page.goto(f"{base}/")
    for path in ("/console/", "/conformance/", "/openadr3/3.1.0/docs", "/openadr3/3.0.1/docs",
                 "/dispatch/api/v1/docs", "/.well-known/jwks.json"):
        assert page.locator(f"a[href='{path}']").count() >= 1, path
    shot(page, "demo-00-landing")
    page.get_by_role("link", name="Operator console").click()
    console = printed["console"]
    page.get_by_label("Username").fill(console["username"])
    page.get_by_label("Password").fill(console["password"])
    page.get_by_label("Authenticator code").fill(totp_code(console["otpauth_uri"]))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/console/")

    sections = page.locator("nav[aria-label='Main'] a").all_inner_texts()
    assert sections[:6] == ["Dashboard", "Registry", "Dispatches", "Settlement", "Audit",
                            "Subscriptions"], sections
    for number, name in enumerate(sections, start=1):
        page.locator("nav[aria-label='Main']").get_by_role("link", name=name).click()
        page.wait_for_load_state()
        assert page.locator("nav [aria-current='page']").inner_text() == name
        main = page.inner_text("main")
        assert "Server error" not in main and "Not found" not in main
        shot(page, f"demo-{number:02d}-{name.lower()}")

    # The history is there: a settled statement with a chart, past dispatches acknowledged.
    page.goto(f"{base}/console/statements")
    page.locator("a[href^='/console/statements/']").first.click()
    page.wait_for_load_state()
    assert page.locator("svg.chart").count() >= 1
    assert "Net (GBP)" in page.inner_text("section[aria-labelledby='h-totals']")
    shot(page, "demo-07-statement")
    page.goto(f"{base}/console/dispatches?conformance=hide")
    page.locator("a[href^='/console/dispatches/ENWL/DEMO-']").first.click()
    page.wait_for_load_state()
    timeline = page.inner_text("main")
    assert "ACTIONED" in timeline.upper()
    cells = timeline.replace("\t", "\n").splitlines()
    delays = [int(cell.strip()[:-2]) for cell in cells if re.fullmatch(r"-?\d+ s", cell.strip())]
    assert delays and min(delays) >= 0, delays  # no acknowledgement before its revision
    shot(page, "demo-08-past-dispatch")
