#!/usr/bin/env bash
# Remove the ocpp-agent service (run by `sudo make uninstall`).
# Stops and disables the unit, removes the unit file, /opt/ocpp-agent and the /usr/local/bin link.
# Keeps the config (/etc/ocpp-agent), the data (/var/lib/ocpp-agent) and the ocpp-agent user.
# DESTDIR=/some/root prefixes every path and skips systemctl. Running it twice is fine.
set -euo pipefail

DESTDIR="${DESTDIR:-}"
DESTDIR="${DESTDIR%/}"
PREFIX=/opt/ocpp-agent
CONF_DIR=/etc/ocpp-agent
DATA_DIR=/var/lib/ocpp-agent
UNIT=ocpp-agent.service
UNIT_FILE=/etc/systemd/system/$UNIT
WEB_UNIT=ocpp-agent-web.service
BIN_LINK=/usr/local/bin/ocpp-agent

say()  { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    die "uninstalling from / needs root: run 'sudo make uninstall' (or set DESTDIR=/some/root)"
fi

say "uninstalling ocpp-agent from ${DESTDIR:-/}"

if [ -n "$DESTDIR" ]; then
    note "DESTDIR set: skipping systemctl stop / disable"
elif ! command -v systemctl >/dev/null; then
    note "systemctl not found: skipping stop / disable"
else
    if [ -d /run/systemd/system ] && systemctl is-active --quiet "$UNIT"; then
        systemctl stop "$UNIT"   # SIGTERM: the agent puts every output in the safe state first
        say "stopped $UNIT"
    fi
    if systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
        systemctl disable "$UNIT" >/dev/null 2>&1 || note "systemctl disable $UNIT failed"
        say "disabled $UNIT"
    fi
fi

# The dashboard first: it reads what the daemon leaves.
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null; then
    if [ -d /run/systemd/system ] && systemctl is-active --quiet "$WEB_UNIT"; then
        systemctl stop "$WEB_UNIT" && say "stopped $WEB_UNIT"
    fi
    if systemctl is-enabled --quiet "$WEB_UNIT" 2>/dev/null; then
        systemctl disable "$WEB_UNIT" >/dev/null 2>&1 || note "systemctl disable $WEB_UNIT failed"
    fi
fi
if [ -e "$DESTDIR/etc/systemd/system/$WEB_UNIT" ]; then
    rm -f "$DESTDIR/etc/systemd/system/$WEB_UNIT"
    say "removed /etc/systemd/system/$WEB_UNIT"
fi
if [ -e "$DESTDIR$UNIT_FILE" ]; then
    rm -f "$DESTDIR$UNIT_FILE"
    say "removed $UNIT_FILE"
else
    note "$UNIT_FILE already gone"
fi
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl reset-failed "$UNIT" 2>/dev/null || true
fi

if [ -L "$DESTDIR$BIN_LINK" ] && [ "$(readlink "$DESTDIR$BIN_LINK")" = "$PREFIX/venv/bin/ocpp-agent" ]; then
    rm -f "$DESTDIR$BIN_LINK"
    say "removed $BIN_LINK"
fi

if [ -e "$DESTDIR$PREFIX" ]; then
    rm -rf -- "$DESTDIR$PREFIX"   # PREFIX is a constant: never empty
    say "removed $PREFIX"
else
    note "$PREFIX already gone"
fi

cat <<EOF

ocpp-agent uninstalled. Kept (remove by hand if you no longer need them):
  $CONF_DIR      the configuration
  $DATA_DIR    the data: transactions, outbox, message log
  user and group ocpp-agent    (sudo userdel ocpp-agent)
EOF
