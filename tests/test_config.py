"""Settings: file, then REPROGATE_* environment, then flags; every value checked once."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, load_settings


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 9000\ndeadline_seconds: 5\nregistry:\n  request_timeout: 2\n")
    env = {"REPROGATE_PORT": "9100", "REPROGATE_EVENTS": "true"}
    s = load_settings(str(cfg), {"port": 9200}, env=env)
    assert s.port == 9200 and s.deadline_seconds == 5 and s.events is True
    assert s.registry.request_timeout == 2


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("request_timeout: 0\n", "request_timeout must be > 0"),
        ("evidence_ttl: -1\n", "evidence_ttl must be >= 0"),
        ("deadline_seconds: 60\n", "deadline_seconds"),
        ("no_match: maybe\n", "no_match"),
        ("tls_cert: a.pem\n", "tls_cert and tls_key go together"),
        ("polices: x\n", "unknown setting 'polices'"),
        ("port: [1]\n", "port must be a number"),
        ("- a\n", "must be a mapping"),
        ("port: [9000\n", "not valid YAML"),
    ],
)
def test_bad_values_are_refused_naming_the_file(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(str(cfg), {}, env={})
    assert fragment in str(info.value) and str(cfg) in str(info.value)


def test_environment_cannot_set_the_registry_block_as_a_string() -> None:
    s = load_settings(None, {}, env={"REPROGATE_REGISTRY": "x", "REPROGATE_CA_FILE": "/ca.pem"})
    assert s.registry.ca_file == "/ca.pem"


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(str(tmp_path / "absent.yaml"), {}, env={})
