"""The [web] section: accepted by the daemon's config, each mistake reported by its key path."""

import pytest

from agent.config import load_config
from agent.config.web import WebConfig, exposure_problem, is_loopback, parse_listen
from agent.errors import ConfigError

MINIMAL = """
[station]
id = "CP1"
data_dir = "/tmp/x"
[csms]
url = "ws://127.0.0.1:9000/ocpp"
[[evse]]
id = 1
"""


def load(tmp_path, web_section: str):
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL + "[web]\n" + web_section)
    return load_config(path)


def problems(tmp_path, web_section: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, web_section)
    return [str(p) for p in info.value.errors]


def test_web_config_defaults_to_loopback_without_password(tmp_path):
    config = load(tmp_path, "")
    assert config.web == WebConfig(listen="127.0.0.1:8080", password="")
    assert exposure_problem(config.web) is None


def test_web_config_every_mistake_named_by_key_path(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    found = problems(tmp_path, f'listen = "8080"\npasword = "x"\ntls_cert_file = "{cert}"\n')
    assert "web.listen: expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080, got '8080'" in found
    assert 'web.pasword: unknown key (did you mean "password"?)' in found
    assert "web.tls_key_file: TLS needs both tls_cert_file and tls_key_file (or neither)" in found


def test_web_config_tls_files_must_exist(tmp_path):
    found = problems(tmp_path, f'tls_cert_file = "{tmp_path}/no.pem"\ntls_key_file = "{tmp_path}/no.key"\n')
    assert f"web.tls_cert_file: file not found or not readable: {tmp_path}/no.pem" in found
    assert f"web.tls_key_file: file not found or not readable: {tmp_path}/no.key" in found


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9", ("::1", 9)), ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("charger.local:8443", ("charger.local", 8443)),
])
def test_web_config_parse_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", ":80", "host:", "host:0", "host:65536", "host:http"])
def test_web_config_parse_listen_refuses(text):
    with pytest.raises(ValueError):
        parse_listen(text)


def test_web_config_non_loopback_needs_password_only_at_web_start(tmp_path):
    config = load(tmp_path, 'listen = "0.0.0.0:8080"\n')  # the daemon and check-config accept it
    assert exposure_problem(config.web).startswith("web.password: ")
    assert exposure_problem(WebConfig(), "192.168.1.5:80").startswith("web.password: ")
    assert exposure_problem(WebConfig(password="pw"), "0.0.0.0:80") is None
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("charger.local")
