"""The agent installs on its own, as on a gateway box: a clean virtual environment,
``pip install ./gbflex_profile ./ven_client``, nothing of the VTN's dependencies and no
Django; then the installed command line initialises, registers its key, polls the real
VTN and acknowledges a dispatch, and the installed offline verifier checks the dispatch's
audit export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("gateway")
    # Build from copies, so no build artefacts land in the source tree.
    for folder in ("gbflex_profile", "ven_client"):
        shutil.copytree(ROOT / folder, work / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "./gbflex_profile",
                             "./ven_client"], cwd=work, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


@pytest.mark.slow
def test_pip_install_of_the_folder_gives_a_working_command_without_django(clean_venv):
    help_text = subprocess.run([str(clean_venv / "bin" / "ven-client"), "--help"],
                               capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "usage: ven-client" in help_text.stdout
    installed = subprocess.run([str(clean_venv / "bin" / "pip"), "list", "--format=json"],
                               capture_output=True, text=True, timeout=60)
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert {"gb-flex-ven-client", "gb-flex-profile", "urllib3", "cryptography", "rfc8785",
            "joserfc"} <= names
    # HTTPS goes through urllib3 itself: requests and its helpers are not installed.
    assert not names & {"django", "djangorestframework", "psycopg", "requests", "certifi",
                        "charset-normalizer", "idna"}
    django = subprocess.run([str(clean_venv / "bin" / "python"), "-c", "import django"],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert django.returncode != 0 and "No module named 'django'" in django.stderr
    imports = subprocess.run(
        [str(clean_venv / "bin" / "python"), "-c",
         "import sys, ven_client.agent, ven_client.cli, gbflex_profile.audit_chain; "
         "assert not [m for m in sys.modules if m.startswith(('django', 'vtn', 'dispatch'))]"],
        capture_output=True, text=True, timeout=60, cwd="/")
    assert imports.returncode == 0, imports.stderr
    verifier = subprocess.run([str(clean_venv / "bin" / "gbflex-audit"), "--help"],
                              capture_output=True, text=True, timeout=60, cwd="/")
    assert verifier.returncode == 0 and "verify" in verifier.stdout


@pytest.mark.slow
def test_the_installed_agent_acknowledges_a_dispatch_and_the_installed_verifier_checks_it(
        clean_venv, vtn_server, tmp_path):
    fsp = vtn_server.unique("gwfsp")
    onboarding = vtn_server.manage("fsp", "onboard", "--operator", "NGED-EM", "--fsp", fsp,
                                   "--unit", "g1:1500:export", "--dir",
                                   str(vtn_server.pki_dir), "--out", str(tmp_path / "pki"))
    (tmp_path / "onboarding.json").write_text(onboarding.stdout)
    command = [str(clean_venv / "bin" / "ven-client"), "--config",
               str(tmp_path / "config.toml")]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60,
                              cwd="/")

    init = run("init", "--from-onboarding", str(tmp_path / "onboarding.json"),
               "--vtn-url", vtn_server.base_url, "--ca-bundle", vtn_server.ca_bundle,
               "--state-dir", str(tmp_path / "state"), "--handler-command", "true")
    assert init.returncode == 0, init.stderr
    keys = run("keys", "generate")
    assert keys.returncode == 0, keys.stdout + keys.stderr
    assert (tmp_path / "state" / "site-signing-key.pem").stat().st_mode & 0o777 == 0o600
    again = run("keys", "register")  # registering the same key twice is harmless
    assert again.returncode == 0 and json.loads(again.stdout)["registered"], again.stdout
    once = run("once")
    assert once.returncode == 0, once.stdout + once.stderr
    assert json.loads(onboarding.stdout)["client_secret"] not in once.stdout + keys.stdout
    status = json.loads(run("status").stdout)
    assert status["commsState"] == "online"
    assert status["ven"]["units"] == ["g1"]
    assert status["certificate"]["daysLeft"] > 0
    assert status["pendingMessages"] == 0

    # A dispatch: the installed agent verifies it, runs the handler and signs both
    # acknowledgements; the installed verifier checks the export of its audit trail.
    vtn_server.manage("fsp", "contract", "--operator", "NGED-EM", "--fsp", fsp, "--id",
                      f"C-{fsp}", "--product", "MW_DISPATCH", "--unit", "g1")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    reference = vtn_server.unique("GW")
    vtn_server.manage("dispatch", "issue", "--operator", "NGED-EM", "--unit", f"{fsp}/g1",
                      "--product", "MW_DISPATCH", "--ref", reference, "--start",
                      start.isoformat(), "--end", (start + timedelta(minutes=30)).isoformat(),
                      "--kw", "100")
    acted = run("once")
    assert acted.returncode == 0, acted.stdout + acted.stderr
    out = tmp_path / "audit.json"
    vtn_server.manage("dispatch", "audit-export", reference, "--operator", "NGED-EM",
                      "--out", str(out))
    export = json.loads(out.read_text())
    assert [e["payload"]["outcome"] for e in export["entries"]
            if e["kind"] == "ack_recorded"] == ["accepted", "accepted"]
    verified = subprocess.run([str(clean_venv / "bin" / "gbflex-audit"), "verify", str(out)],
                              capture_output=True, text=True, timeout=60, cwd="/")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"OK: 3 entries of NGED-EM/{reference}")
    export["entries"][0]["payload"]["serviceTimings"][0]["volume"] = 99  # not what was signed
    out.write_text(json.dumps(export))
    forged = subprocess.run([str(clean_venv / "bin" / "gbflex-audit"), "verify", str(out)],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert forged.returncode == 1 and "FAIL" in forged.stdout
