"""What the agent imports before its first poll: the command line and the agent module
load neither the signing libraries (loaded after the first poll) nor MQTT (loaded when
the VTN offers it), nor requests (the agent speaks HTTPS through urllib3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LATER = ("cryptography", "joserfc", "paho", "requests")


def test_starting_the_agent_imports_no_signing_library_mqtt_or_requests():
    listed = subprocess.run(
        [sys.executable, "-c", "import json, sys, ven_client.cli, ven_client.agent; "
         "print(json.dumps(sorted(sys.modules)))"],
        env=os.environ | {"PYTHONPATH": str(ROOT)}, cwd="/", capture_output=True, text=True,
        timeout=120)
    assert listed.returncode == 0, listed.stderr
    modules = json.loads(listed.stdout)
    assert "ven_client.transport" in modules and "urllib3" in modules
    assert [m for m in modules if m.split(".")[0] in LATER] == []
