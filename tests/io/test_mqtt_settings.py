"""Broker URLs, ``--mqtt*`` options and topic prefixes: read, or refused with a reason."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from improv.errors import UsageError
from improv.io.mqtt import bridge_from_args
from improv.io.mqtt.settings import (
    PASSWORD_ENV,
    MqttSettings,
    add_mqtt_arguments,
    parse_mqtt_url,
    settings_from_args,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://localhost", ("localhost", 1883, None, None, False)),
        ("mqtt://broker.lan:1884", ("broker.lan", 1884, None, None, False)),
        ("mqtts://broker.lan", ("broker.lan", 8883, None, None, True)),
        ("mqtt://tech:s%40cret@10.0.0.5:1883/", ("10.0.0.5", 1883, "tech", "s@cret", False)),
        ("mqtt://[::1]:1999", ("::1", 1999, None, None, False)),
        ("mqtt://user@host", ("host", 1883, "user", None, False)),
    ],
)
def test_urls_are_read(url: str, expected: tuple[object, ...]) -> None:
    parsed = parse_mqtt_url(url)
    assert tuple(parsed[k] for k in ("host", "port", "username", "password", "tls")) == expected


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://host", "not an MQTT URL"),
        ("host:1883", "not an MQTT URL"),
        ("mqtt://", "no host"),
        ("mqtt://host:99999", "bad port"),
        ("mqtt://host:abc", "bad port"),
        ("mqtt://host/topic", "no path"),
        ("mqtt://host?x=1", "no path"),
    ],
)
def test_bad_urls_are_refused(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_mqtt_url(url)


def test_prefix_defaults_to_the_agent_id_and_always_ends_in_a_slash() -> None:
    assert MqttSettings("h", agent_id="stage-left").topic_prefix == "improv/stage-left/"
    assert MqttSettings("h", prefix="venue/band").topic_prefix == "venue/band/"
    assert MqttSettings("h").agent_id  # this host's name, made topic-safe


@pytest.mark.parametrize(
    "options",
    [
        {"agent_id": "a/b"},
        {"agent_id": "a+b"},
        {"agent_id": ""},
        {"prefix": "improv/#"},
        {"prefix": "$SYS/x"},
        {"ca": Path("ca.pem")},  # TLS files without mqtts
        {"tls": True, "key": Path("k.pem")},  # a key without its certificate
        {"reconnect_min_s": 2.0, "reconnect_max_s": 1.0},
    ],
)
def test_bad_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MqttSettings("h", **options)  # type: ignore[arg-type]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_mqtt_arguments(parser)
    return parser.parse_args(argv)


def test_no_broker_without_mqtt() -> None:
    assert bridge_from_args(parse()) is None


def test_options_make_settings() -> None:
    settings = settings_from_args(
        parse("--mqtt", "mqtt://u:p@host:1999", "--mqtt-id", "left", "--mqtt-prefix", "x/y")
    )
    assert settings is not None
    assert (settings.host, settings.port, settings.username, settings.password) == (
        "host",
        1999,
        "u",
        "p",
    )
    assert settings.agent_id == "left"
    assert settings.topic_prefix == "x/y/"


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--mqtt-id", "x"], "need --mqtt"),
        (["--mqtt", "http://x"], "not an MQTT URL"),
        (["--mqtt", "mqtts://x", "--mqtt-ca", "/no/such/ca.pem"], "no such file"),
        (["--mqtt", "mqtt://x", "--mqtt-id", "a/b"], "agent id"),
    ],
)
def test_bad_options_are_usage_errors(argv: list[str], error: str) -> None:
    with pytest.raises(UsageError, match=error):
        settings_from_args(parse(*argv))


def test_a_file_that_is_not_a_certificate_is_a_usage_error(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    with pytest.raises(UsageError, match="--mqtt"):
        settings_from_args(parse("--mqtt", "mqtts://x", "--mqtt-ca", str(ca)))


def with_config(path: Path, *argv: str) -> argparse.Namespace:
    args = parse(*argv)
    args.config = path
    return args


def test_the_config_file_mqtt_table_is_read_and_the_command_line_wins(tmp_path: Path) -> None:
    stage = tmp_path / "stage.toml"
    stage.write_text(
        '[jam]\ntempo = 140\n\n[mqtt]\nurl = "mqtt://broker.lan:1999"\nid = "left"\n'
        'prefix = "club/"\n'
    )
    settings = settings_from_args(with_config(stage))
    assert settings is not None
    assert (settings.host, settings.port, settings.agent_id) == ("broker.lan", 1999, "left")
    assert settings.topic_prefix == "club/"
    settings = settings_from_args(with_config(stage, "--mqtt", "mqtt://other", "--mqtt-id", "r"))
    assert settings is not None and (settings.host, settings.agent_id) == ("other", "r")
    from improv.engine.config import build_config

    assert build_config(stage).tempo == 140  # the jam's own settings ignore the table


def test_the_shipped_stage_example_loads() -> None:
    stage = Path(__file__).parents[2] / "examples" / "stage.toml"
    assert settings_from_args(with_config(stage)) is None  # its [mqtt] url is commented out
    from improv.engine.config import build_config

    assert build_config(stage).key == "Bb"


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('host = "x"', "unknown \\[mqtt\\] setting 'host'"),
        ("url = 5", "must be a non-empty string"),
        ('url = "mqtts://x"\nca = "missing.pem"', "no such file"),
        ('id = "x"', "need --mqtt"),
    ],
)
def test_bad_mqtt_tables_are_usage_errors(tmp_path: Path, table: str, error: str) -> None:
    stage = tmp_path / "stage.toml"
    stage.write_text(f"[mqtt]\n{table}\n")
    with pytest.raises(UsageError, match=error):
        settings_from_args(with_config(stage))


def test_the_password_comes_from_a_file_or_the_environment_not_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    url = "mqtt://band@localhost"
    from_env = settings_from_args(parse("--mqtt", url))
    from_file = settings_from_args(parse("--mqtt", url, "--mqtt-password-file", str(secret)))
    assert from_env is not None and from_env.password == "from-env"
    assert from_file is not None and from_file.password == "s3cret"
    assert from_file.username == "band"
    with pytest.raises(UsageError, match="regular file"):
        settings_from_args(parse("--mqtt", url, "--mqtt-password-file", "/dev/zero"))
    in_url = settings_from_args(parse("--mqtt", "mqtt://band:visible@localhost"))
    assert in_url is not None and in_url.password == "visible"
    assert "visible to every user" in caplog.text
