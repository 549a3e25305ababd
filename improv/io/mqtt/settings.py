"""Where the MQTT broker is and how the bridge behaves: settings, broker URLs and the
``--mqtt*`` options of ``improv jam``.

Kept apart from the bridge so that building the command line imports neither asyncio
nor aiomqtt (``improv --help`` stays quick).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

from improv.errors import UsageError
from improv.files import read_limited, read_toml

if TYPE_CHECKING:
    import ssl

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 1883
DEFAULT_TLS_PORT: Final = 8883

_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def default_agent_id() -> str:
    """This machine's name, made safe for a topic level."""
    return _ID_CHARS.sub("-", socket.gethostname()).strip("-") or "improv"


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    """How many messages of each kind may wait while the broker is slow or gone."""

    beats: int = 4
    kept: int = 256
    results: int = 256

    def __post_init__(self) -> None:
        if min(self.beats, self.kept, self.results) < 1:
            raise ValueError(f"outbox limits must be at least 1: {self}")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where the broker is and how the bridge behaves; see :func:`parse_mqtt_url`."""

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    agent_id: str = field(default_factory=default_agent_id)
    prefix: str | None = None
    keepalive_s: int = 5
    timeout_s: float = 3.0
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 1.0
    close_timeout_s: float = 2.0
    limits: OutboxLimits = field(default_factory=OutboxLimits)

    def __post_init__(self) -> None:
        if not self.agent_id or _ID_CHARS.search(self.agent_id):
            raise ValueError(f"agent id must be letters, digits, '_', '.', '-': {self.agent_id!r}")
        prefix = self.topic_prefix
        if any(c in prefix for c in "+#\0") or prefix.startswith("$") or prefix == "/":
            raise ValueError(f"not a usable topic prefix (no + # $ or empty): {prefix!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port out of range: {self.port}")
        if (self.ca or self.cert or self.key) and not self.tls:
            raise ValueError("--mqtt-ca/--mqtt-cert/--mqtt-key need an mqtts:// URL")
        if self.key and not self.cert:
            raise ValueError("--mqtt-key needs --mqtt-cert")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError("reconnect delays must satisfy 0 < min <= max")

    @property
    def topic_prefix(self) -> str:
        """The prefix every topic starts with, ending in ``/``."""
        prefix = self.prefix if self.prefix is not None else f"improv/{self.agent_id}/"
        return prefix if prefix.endswith("/") else prefix + "/"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MqttSettings:
        """Settings from ``mqtt://[user:pass@]host[:port]`` (or ``mqtts://``) and options."""
        return cls(**{**parse_mqtt_url(url), **options})

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context of an ``mqtts://`` connection (system CAs unless ``ca``)."""
        if not self.tls:
            return None
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.cert:
            context.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
        return context


def parse_mqtt_url(url: str) -> dict[str, Any]:
    """``mqtt://[user:pass@]host[:port]`` -> host, port, username, password, tls."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"not an MQTT URL (mqtt:// or mqtts://): {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"an MQTT URL has no path or query: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    tls = parts.scheme == "mqtts"
    return {
        "host": parts.hostname,
        "port": port if port is not None else (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
        "username": unquote(parts.username) if parts.username is not None else None,
        "password": unquote(parts.password) if parts.password is not None else None,
        "tls": tls,
    }


def add_mqtt_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--mqtt*`` options of ``improv jam``; without ``--mqtt`` there is no broker."""
    group = parser.add_argument_group("MQTT (publish the jam, take control requests)")
    group.add_argument(
        "--mqtt", metavar="URL", help="broker URL: mqtt://[user:pass@]host[:port] or mqtts://..."
    )
    group.add_argument(
        "--mqtt-prefix", metavar="P", help="topic prefix (default improv/<mqtt-id>/)"
    )
    group.add_argument(
        "--mqtt-id", metavar="ID", help="agent id in topics (default: this host's name)"
    )
    group.add_argument("--mqtt-ca", metavar="FILE", type=Path, help="CA certificates (mqtts)")
    group.add_argument("--mqtt-cert", metavar="FILE", type=Path, help="client certificate")
    group.add_argument("--mqtt-key", metavar="FILE", type=Path, help="client private key")
    group.add_argument(
        "--mqtt-password-file",
        metavar="FILE",
        type=Path,
        help=f"the broker password, read from a file (or set {PASSWORD_ENV}; a password in "
        "the URL is visible to every user in ps)",
    )


_TABLE_KEYS = ("url", "prefix", "id", "ca", "cert", "key", "password-file")
PASSWORD_ENV: Final = "IMPROV_MQTT_PASSWORD"
PASSWORD_LIMIT: Final = 4096


def mqtt_table(path: Path | None) -> dict[str, Any]:
    """The ``[mqtt]`` table of a ``--config`` file (``url``, ``prefix``, ``id``, ``ca``,
    ``cert``, ``key``; files relative to the config file); empty when there is none."""
    if path is None:
        return {}
    table = read_toml(path).get("mqtt", {})
    if not isinstance(table, dict):
        raise UsageError(f"--config {path}: [mqtt] must be a table")
    out: dict[str, Any] = {}
    for name, value in table.items():
        if name not in _TABLE_KEYS:
            raise UsageError(
                f"--config {path}: unknown [mqtt] setting {name!r} "
                f"(known: {', '.join(_TABLE_KEYS)})"
            )
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"--config {path}: [mqtt] {name} must be a non-empty string")
        out[name] = path.parent / value if name in ("ca", "cert", "key", "password-file") else value
    return out


def _password(args: argparse.Namespace, table: dict[str, Any]) -> str | None:
    """The broker password from ``--mqtt-password-file`` (or the table's
    ``password-file``), else from the environment: never on the command line."""
    path: Path | None = getattr(args, "mqtt_password_file", None) or table.get("password-file")
    if path is not None:
        data = read_limited(path, PASSWORD_LIMIT, "--mqtt-password-file")
        try:
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise UsageError(f"--mqtt-password-file {path}: not UTF-8 text") from None
    return os.environ.get(PASSWORD_ENV) or None


def settings_from_args(args: argparse.Namespace) -> MqttSettings | None:
    """The bridge settings the options ask for (the command line over the ``--config``
    file's ``[mqtt]`` table); None without a broker URL."""
    table = mqtt_table(getattr(args, "config", None))
    url: str | None = args.mqtt or table.get("url")
    tls_files = {
        name: getattr(args, f"mqtt_{name}") or table.get(name) for name in ("ca", "cert", "key")
    }
    agent_id = args.mqtt_id or table.get("id")
    prefix = args.mqtt_prefix or table.get("prefix")
    if url is None:
        if any(tls_files.values()) or prefix or agent_id:
            raise UsageError("the --mqtt-* options need --mqtt URL")
        return None
    for name, path in tls_files.items():
        if path is not None and not path.is_file():
            raise UsageError(f"--mqtt-{name}: no such file: {path}")
    options: dict[str, Any] = {k: v for k, v in tls_files.items() if v is not None}
    if agent_id:
        options["agent_id"] = agent_id
    if prefix:
        options["prefix"] = prefix
    password = _password(args, table)
    try:
        in_url = parse_mqtt_url(url)["password"] is not None
    except ValueError as exc:
        raise UsageError(f"--mqtt: {exc}") from None
    if in_url:
        log.warning(
            "--mqtt: the password in the URL is visible to every user (ps); use "
            "--mqtt-password-file or %s",
            PASSWORD_ENV,
        )
    elif password is not None:
        options["password"] = password
    try:
        settings = MqttSettings.from_url(url, **options)
        settings.tls_context()  # bad certificates are a usage error now, not a retry loop
    except (ValueError, OSError) as exc:  # ssl.SSLError is an OSError
        raise UsageError(f"--mqtt: {exc}") from None
    return settings
