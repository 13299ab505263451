"""sd_notify: datagrams to $NOTIFY_SOCKET, silent outside systemd."""

import socket

from agent.runtime.sdnotify import Notifier


def test_sdnotify_sends_lines_to_the_socket(tmp_path):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    notifier = Notifier(path)
    notifier.ready("HAL up")
    notifier.watchdog()
    notifier.stopping()
    assert server.recv(256) == b"READY=1\nSTATUS=HAL up"
    assert server.recv(256) == b"WATCHDOG=1"
    assert server.recv(256) == b"STOPPING=1"
    notifier.close()
    server.close()


def test_sdnotify_is_a_noop_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready()  # must not raise


def test_sdnotify_missing_socket_is_logged_not_raised(tmp_path, caplog):
    Notifier(str(tmp_path / "gone")).ready()
    assert "sd_notify failed" in caplog.text


def test_sdnotify_watchdog_interval_from_environment(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert Notifier("/x").watchdog_interval_s() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert Notifier("/x").watchdog_interval_s() is None
