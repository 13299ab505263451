"""``ocpp-agent web`` before it serves: without the optional extra, and aiohttp kept inside agent/web."""

import re
import sys

from agent.commands.web import run_web_command
from agent.config import parse_config
from tests import REPO_ROOT


def test_web_command_without_aiohttp_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    config = parse_config({"station": {"id": "CP1", "data_dir": str(tmp_path)},
                           "csms": {"url": "ws://127.0.0.1:9/ocpp"}, "evse": [{"id": 1}]})
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as on a headless charger without ocpp-agent[web]
    for name in [name for name in sys.modules if name.startswith(("agent.web.server", "agent.web.auth"))]:
        monkeypatch.delitem(sys.modules, name)
    assert run_web_command(config) == 1
    assert "install ocpp-agent[web]" in capsys.readouterr().err


def test_aiohttp_is_imported_only_by_the_web_package():
    importing = re.compile(r"^\s*(import aiohttp|from aiohttp)", re.MULTILINE)
    offenders = [str(path.relative_to(REPO_ROOT)) for package in ("agent", "hal") for path in (REPO_ROOT / package).rglob("*.py")
                 if importing.search(path.read_text()) and "agent/web/" not in path.as_posix()]
    assert offenders == []
