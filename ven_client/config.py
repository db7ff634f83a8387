"""The agent's configuration: one flat TOML (or JSON) file, every key documented in
docs/fsp-agent.md. A relative path in the file is relative to the file's folder (not to
the working directory), and so is a relative program path in ``handler_command``;
durations are seconds."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ENV_CONFIG = "VEN_CLIENT_CONFIG"
DEFAULT_PATH = "/etc/ven-client/config.toml"
VERSIONS = ("3.1.0", "3.0.1")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass
class Config:
    vtn_url: str = ""  # https://vtn.example.net (no /openadr3 suffix)
    # Ordered VTN URLs for fail-over (disaster recovery); empty: just vtn_url. When set,
    # the first is the primary (vtn_url defaults to it) and the agent moves to the next
    # after failover_after_failures consecutive connection failures, and back to the
    # first once its /readyz answers (checked every failback_check_s).
    vtn_urls: list[str] = field(default_factory=list)
    failover_after_failures: int = 3
    failback_check_s: float = 60.0
    openadr_version: str = "3.1.0"
    client_id: str = ""
    client_secret: str = ""
    client_secret_file: str = ""  # used when client_secret is empty
    client_cert: str = ""  # site certificate (PEM) for mTLS; empty: no client certificate
    client_key: str = ""
    ca_bundle: str = ""  # CA bundle that verifies the VTN; empty: the system trust store
    tls_verify: bool = True
    proxy: str = ""  # HTTPS proxy URL; the environment's proxy variables are not used
    ven_name: str = ""  # empty: the one VEN object this client sees
    dispatch_units: list[str] = field(default_factory=list)  # empty: every unit of the VEN
    handler_command: list[str] = field(default_factory=list)  # argv; instruction on stdin
    handler_entry_point: str = ""  # "module:function", used when handler_command is empty
    handler_timeout_s: float = 60.0
    poll_interval_s: float = 10.0
    poll_jitter: float = 0.1  # fraction of the interval, +- at random
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 60.0  # at most the shortest heartbeat interval (MW Dispatch)
    heartbeat_interval_s: float = 0.0  # 0: the shortest GB_HEARTBEAT_INTERVAL of the programs
    programs_refresh_s: float = 60.0  # how often the programs are read again (their
    # GB_HEARTBEAT_INTERVAL may change while the agent runs)
    request_timeout_s: float = 30.0
    state_dir: str = "/var/lib/ven-client"
    signing_key: str = ""  # default <state_dir>/site-signing-key.pem
    signing_kid: str = ""
    jwks_file: str = ""  # pinned operator JWKS; empty: fetch <vtn_url>/.well-known/jwks.json
    drop_dir: str = ""  # CSV drop folder for readings and availability; empty: none
    clock_skew_warn_s: float = 5.0
    log_format: str = "json"  # json or kv
    log_level: str = "info"
    push: bool = True  # MQTT wake-ups when the VTN offers them and ven-client[mqtt] is installed

    def __post_init__(self) -> None:
        if self.vtn_urls and not self.vtn_url:
            self.vtn_url = self.vtn_urls[0]

    # -- derived --

    @property
    def urls(self) -> list[str]:
        """The VTN URLs in the order the agent tries them (the primary first)."""
        return list(self.vtn_urls) or [self.vtn_url]

    @property
    def base_path(self) -> str:
        return f"{self.vtn_url.rstrip('/')}/openadr3/{self.openadr_version}"

    @property
    def signing_key_path(self) -> Path:
        return Path(self.signing_key) if self.signing_key else \
            Path(self.state_dir) / "site-signing-key.pem"

    @property
    def database_path(self) -> Path:
        return Path(self.state_dir) / "state.sqlite3"

    def secret(self) -> str:
        """The OAuth2 client secret (from the file when ``client_secret`` is empty)."""
        if self.client_secret:
            return self.client_secret
        if self.client_secret_file:
            try:
                return Path(self.client_secret_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read client_secret_file: {exc}") from exc
        return ""

    def validate(self) -> None:
        problems = []
        if not self.vtn_url.startswith(("https://", "http://")):
            problems.append("vtn_url must be an https:// URL")
        if any(not url.startswith(("https://", "http://")) for url in self.vtn_urls):
            problems.append("every vtn_urls entry must be an https:// URL")
        if self.vtn_urls and self.vtn_url not in self.vtn_urls:
            problems.append("vtn_url must be one of vtn_urls (or left out)")
        if self.failover_after_failures < 1 or self.failback_check_s <= 0:
            problems.append("failover_after_failures must be at least 1 and "
                            "failback_check_s positive")
        if self.openadr_version not in VERSIONS:
            problems.append(f"openadr_version must be one of {', '.join(VERSIONS)}")
        if not self.client_id:
            problems.append("client_id is required")
        if not self.client_secret and not self.client_secret_file:
            problems.append("client_secret or client_secret_file is required")
        if bool(self.client_cert) != bool(self.client_key):
            problems.append("client_cert and client_key go together")
        if self.poll_interval_s <= 0 or self.backoff_initial_s <= 0 or \
                self.backoff_max_s < self.backoff_initial_s:
            problems.append("intervals must be positive and backoff_max_s >= backoff_initial_s")
        if self.programs_refresh_s < 0:
            problems.append("programs_refresh_s must not be negative")
        if not 0 <= self.poll_jitter < 1:
            problems.append("poll_jitter is a fraction in [0, 1)")
        if self.log_format not in ("json", "kv"):
            problems.append("log_format must be json or kv")
        if problems:
            raise ConfigError("; ".join(problems))


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
# Keys that name files or folders: a relative one is relative to the configuration file.
PATH_FIELDS = ("client_secret_file", "client_cert", "client_key", "ca_bundle", "state_dir",
               "signing_key", "jwks_file", "drop_dir")


def resolve_paths(config: Config, base: Path) -> Config:
    """``config`` with its relative paths made absolute against ``base`` (a folder). The
    handler command's program is a path when it contains a slash (``./control.sh``);
    a bare name (``site-control``) is looked up on PATH when it runs."""
    def absolute(value: str) -> str:
        return os.path.abspath(os.path.join(base, os.path.expanduser(value)))

    changes: dict = {name: absolute(getattr(config, name)) for name in PATH_FIELDS
                     if getattr(config, name)}
    command = list(config.handler_command)
    if command and "/" in command[0]:
        changes["handler_command"] = [absolute(command[0]), *command[1:]]
    return dataclasses.replace(config, **changes)


def default_path() -> Path:
    return Path(os.environ.get(ENV_CONFIG) or DEFAULT_PATH)


def from_dict(data: dict) -> Config:
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
    values = {}
    defaults = Config()
    for name, value in data.items():
        expected = type(getattr(defaults, name))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is list and isinstance(value, str):
            value = value.split()
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ConfigError(f"{name} must be a {expected.__name__}")
        values[name] = value
    return Config(**values)


def load(path: str | Path) -> Config:
    """Read ``path`` (TOML, or JSON when it ends in .json) and validate it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                          f"{exc}") from exc
    config = resolve_paths(from_dict(data), path.parent)
    config.validate()
    return config


def dumps(config: Config, *, json_format: bool = False) -> str:
    data = dataclasses.asdict(config)
    if json_format:
        return json.dumps(data, indent=2) + "\n"
    lines = ["# ven-client configuration; every key is described in docs/fsp-agent.md"]
    for name, value in data.items():
        lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} as TOML")


def save(config: Config, path: str | Path) -> None:
    """Write ``config`` to ``path`` (mode 0600: it may hold the client secret)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(config, json_format=path.suffix == ".json")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
