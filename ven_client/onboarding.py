"""``ven-client init --from-onboarding FILE``: the configuration values an onboarding
document gives, so that nothing has to be typed by hand.

Two documents are read:

* the operator console's onboarding file (``"format": "gb-flex-vtn-onboarding/1"``): VTN
  URL, OpenADR version, client id and secret, VEN name and the certificate bundle inline
  as PEM. The PEM files are written beside the configuration file (``<name>.tls/``;
  certificate and CA mode 0644, private key mode 0600) and the configuration points at
  them by absolute path;
* the conformance sandbox's self-service answer (the same, its certificate inline as PEM);
* the JSON printed by ``fsp onboard`` or ``pki onboard``: client id and secret, VEN name
  and the paths of the certificate files it wrote.

Options given to ``init`` beside the file win over what the file says.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ven_client.config import ConfigError

FORMAT = "gb-flex-vtn-onboarding/1"
# PEM key in the console's file -> (file name written, mode, configuration key)
PEM_FILES = {"cert_pem": ("client.crt", 0o644, "client_cert"),
             "key_pem": ("client.key", 0o600, "client_key"),
             "ca_pem": ("ca.crt", 0o644, "ca_bundle")}


def read(path: Path) -> dict:
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the onboarding file {path}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"the onboarding file {path} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"the onboarding file {path} is not a JSON object")
    return document


def _write(path: Path, text: str, mode: int, *, force: bool) -> None:
    """Write ``text`` with ``mode`` from the start (a key is never readable by others,
    not even for a moment)."""
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; use --force to overwrite")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)  # whatever the umask
    os.replace(tmp, path)


def values(path: Path, *, config_path: Path, force: bool = False) -> dict:
    """The configuration values of the onboarding document at ``path``; the console's
    file also has its PEM files written into ``<config file name>.tls/`` beside
    ``config_path``."""
    document = read(path)
    certificate = document.get("certificate") or {}
    if not isinstance(certificate, dict):
        raise ConfigError("the onboarding file's certificate must be an object")
    found = {"client_id": document.get("client_id"),
             "client_secret": document.get("client_secret"),
             "ven_name": document.get("ven_name"), "vtn_url": document.get("vtn_url"),
             "openadr_version": document.get("openadr_version")}
    if document.get("format") == FORMAT or any(key in certificate for key in PEM_FILES):
        missing = [key for key in PEM_FILES if not certificate.get(key)]
        if missing:
            raise ConfigError(f"the onboarding file lacks {', '.join(missing)}")
        folder = Path(config_path).absolute().parent / f"{Path(config_path).stem}.tls"
        folder.mkdir(parents=True, exist_ok=True)
        for key, (name, mode, setting) in PEM_FILES.items():
            _write(folder / name, certificate[key], mode, force=force)
            found[setting] = str(folder / name)
    else:  # fsp onboard / pki onboard: the files are where that command wrote them
        source = certificate or document
        found |= {"client_cert": source.get("cert_path"), "client_key": source.get("key_path"),
                  "ca_bundle": source.get("ca_path")}
        # Certificate files named relative to the onboarding file sit beside it.
        for name in ("client_cert", "client_key", "ca_bundle"):
            value = found.get(name)
            if value and not Path(value).is_absolute():
                found[name] = str(Path(path).absolute().parent / value)
    return {key: value for key, value in found.items() if value}
