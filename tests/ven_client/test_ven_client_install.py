"""The agent installs on its own, as on a gateway box: a clean virtual environment,
``pip install ./gbflex_profile ./ven_client``, nothing of the VTN's dependencies and no
Django; then the installed command line initialises, registers its key, polls the real
VTN and acknowledges a dispatch, and the installed offline verifier checks the dispatch's
audit export.

The two distributions are built and installed fresh on every run. What they depend on
(and what builds them) comes from a folder of wheels in the test cache
(``$VTN_TEST_CACHE_DIR``, default ``~/.cache/gb-flex-vtn-tests``), downloaded once per
machine for the requirements the two ``pyproject.toml`` files state; pip installs into
the clean environment from that folder alone (``--no-index``), with the project's own pip
(``pip --python``), so the environment itself is made without one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = ("gbflex_profile", "ven_client")
# Outside the work tree, so a fresh clone (CI) on the same machine reuses it.
CACHE_DIR = Path(os.environ.get("VTN_TEST_CACHE_DIR") or Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gb-flex-vtn-tests")
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def third_party_requirements() -> list[str]:
    """What the two distributions need from an index: their dependencies and their build
    requirements, without the profile package itself (built here from its folder)."""
    found: set[str] = set()
    for folder in DISTRIBUTIONS:
        project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
        found.update(project["build-system"]["requires"])
        found.update(project["project"]["dependencies"])
    return sorted(r for r in found if not r.startswith("gb-flex-"))


def wheelhouse() -> Path:
    """A folder of wheels for :func:`third_party_requirements`, downloaded once per
    machine and set of requirements (and Python version) into the test cache."""
    requirements = third_party_requirements()
    key = hashlib.sha256("\n".join([sys.version.split()[0], *requirements]).encode())
    root = CACHE_DIR / "agent-wheels"
    folder = root / key.hexdigest()[:16]
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions download it once
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            result = subprocess.run([*PIP, "download", "-q", "--dest", str(folder),
                                     *requirements], capture_output=True, text=True,
                                    timeout=600)
            assert result.returncode == 0, result.stdout + result.stderr
            (folder / ".complete").write_text("\n".join(requirements) + "\n")
    return folder


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("gateway")
    # Build from copies, so no build artefacts land in the source tree.
    for folder in DISTRIBUTIONS:
        shutil.copytree(ROOT / folder, work / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    result = subprocess.run([*PIP, "--python", str(venv / "bin" / "python"), "install", "-q",
                             "--no-index", "--find-links", str(wheelhouse()),
                             "./gbflex_profile", "./ven_client"], cwd=work,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


def installed(venv: Path) -> set[str]:
    """The names of the distributions installed in ``venv``."""
    listed = subprocess.run([*PIP, "--python", str(venv / "bin" / "python"), "list",
                             "--format=json"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    return {p["name"].lower() for p in json.loads(listed.stdout)}


@pytest.mark.slow
def test_pip_install_of_the_folder_gives_a_working_command_without_django(clean_venv):
    help_text = subprocess.run([str(clean_venv / "bin" / "ven-client"), "--help"],
                               capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "usage: ven-client" in help_text.stdout
    names = installed(clean_venv)
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
