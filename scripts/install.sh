#!/usr/bin/env bash
# Install ocpp-agent as a systemd service (run by `sudo make install`).
#
#   user/group  ocpp-agent (system user, no login shell, home /var/lib/ocpp-agent), in gpio + dialout
#   /opt/ocpp-agent/venv             virtual environment with the agent installed from this checkout
#   /opt/ocpp-agent/README.md        the documentation the unit points at
#   /usr/local/bin/ocpp-agent        symlink to the venv's entry point
#   /etc/ocpp-agent/agent.toml       from config/raspberry-pi.toml, only if absent (0640 root:ocpp-agent)
#   /var/lib/ocpp-agent              data directory (0750 ocpp-agent:ocpp-agent)
#   /etc/systemd/system/ocpp-agent.service, then daemon-reload + enable (not started)
#   /etc/systemd/system/ocpp-agent-web.service, the dashboard: installed, NOT enabled (needs EXTRAS=web)
#
# Environment:
#   DESTDIR=/some/root      prefix every path; user/group creation and systemctl are skipped
#   PYTHON=python3          interpreter for the venv (>= 3.11)
#   EXTRAS=pi|pi5           also install the GPIO extra (RPi.GPIO for Pi 1-4, gpiod for Pi 5);
#                           add web (EXTRAS=web, pi,web, pi5,web) for the dashboard's aiohttp
#   OCPP_AGENT_SKIP_VENV=1  do not create/update the venv (tests, packaging)
# Running it twice is fine: the venv is updated in place, an existing config is never touched.
set -euo pipefail

DESTDIR="${DESTDIR:-}"
DESTDIR="${DESTDIR%/}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-}"
SKIP_VENV="${OCPP_AGENT_SKIP_VENV:-}"

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USER_NAME=ocpp-agent
PREFIX=/opt/ocpp-agent
VENV="$PREFIX/venv"
CONF_DIR=/etc/ocpp-agent
CONF="$CONF_DIR/agent.toml"
DATA_DIR=/var/lib/ocpp-agent
UNIT_DIR=/etc/systemd/system
UNIT=ocpp-agent.service
WEB_UNIT=ocpp-agent-web.service
BIN_LINK=/usr/local/bin/ocpp-agent

say()  { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    die "installing into / needs root: run 'sudo make install' (or set DESTDIR=/some/root to stage)"
fi
[ -f "$SRC/pyproject.toml" ] && [ -f "$SRC/config/raspberry-pi.toml" ] && [ -f "$SRC/systemd/$UNIT" ] \
    || die "$SRC does not look like an ocpp-agent checkout"
for extra in ${EXTRAS//,/ }; do
    case "$extra" in pi|pi5|web) ;; *) die "EXTRAS must be empty, 'pi' or 'pi5', optionally with ',web' (got '$EXTRAS')" ;; esac
done

say "installing ocpp-agent from $SRC into ${DESTDIR:-/}"

# --- user and groups -------------------------------------------------------------------------
have_owner=0
if [ -n "$DESTDIR" ]; then
    note "DESTDIR set: not creating groups gpio/dialout or user $USER_NAME; files keep the current owner"
else
    for group in gpio dialout; do
        if getent group "$group" >/dev/null; then
            note "group $group exists"
        else
            groupadd --system "$group"
            say "created system group $group"
        fi
    done
    if getent passwd "$USER_NAME" >/dev/null; then
        usermod --append --groups gpio,dialout "$USER_NAME"
        note "user $USER_NAME exists (made sure it is in gpio and dialout)"
    else
        nologin="$(command -v nologin || echo /usr/sbin/nologin)"
        useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell "$nologin" --groups gpio,dialout --comment "ocpp-agent daemon" "$USER_NAME"
        say "created system user $USER_NAME (shell $nologin, home $DATA_DIR, groups gpio dialout)"
    fi
    have_owner=1
fi

own() {  # own OWNER:GROUP PATH - chown only when installing for real
    if [ "$have_owner" = 1 ]; then chown "$1" "$2"; fi
}

# --- directories -----------------------------------------------------------------------------
install -d -m 0755 "$DESTDIR$PREFIX" "$DESTDIR$UNIT_DIR" "$DESTDIR$(dirname "$BIN_LINK")"
install -d -m 0750 "$DESTDIR$CONF_DIR" "$DESTDIR$DATA_DIR"
chmod 0750 "$DESTDIR$CONF_DIR" "$DESTDIR$DATA_DIR"
own root:"$USER_NAME" "$DESTDIR$CONF_DIR"
own "$USER_NAME:$USER_NAME" "$DESTDIR$DATA_DIR"

# --- virtual environment ---------------------------------------------------------------------
if [ -n "$SKIP_VENV" ]; then
    note "OCPP_AGENT_SKIP_VENV set: not creating $DESTDIR$VENV"
else
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "$PYTHON is missing or older than 3.11 (set PYTHON=/path/to/python3.11+)"
    if [ ! -x "$DESTDIR$VENV/bin/python" ]; then
        say "creating virtual environment $DESTDIR$VENV"
        "$PYTHON" -m venv "$DESTDIR$VENV" \
            || die "could not create the venv; on Debian/Raspberry Pi OS: sudo apt install python3-venv"
    else
        note "virtual environment $DESTDIR$VENV exists, updating it"
    fi
    # Build from a copy so the checkout gets no root-owned build/ or *.egg-info.
    stage="$(mktemp -d)"
    trap 'rm -rf "$stage"' EXIT
    tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.pytest_cache --exclude=./tests -cf - . | tar -C "$stage" -xf -
    spec="$stage"
    if [ -n "$EXTRAS" ]; then spec="$stage[$EXTRAS]"; fi
    say "installing the agent${EXTRAS:+ with extra [$EXTRAS]} into the venv (pip)"
    "$DESTDIR$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$spec" \
        || die "pip install failed (see above)"
    note "$("$DESTDIR$VENV/bin/ocpp-agent" --version) installed"
fi
ln -sfn "$VENV/bin/ocpp-agent" "$DESTDIR$BIN_LINK"
note "$BIN_LINK -> $VENV/bin/ocpp-agent"

# --- README ----------------------------------------------------------------------------------
install -m 0644 "$SRC/README.md" "$DESTDIR$PREFIX/README.md"
note "documentation: $PREFIX/README.md"

# --- config (never overwritten) ---------------------------------------------------------------
if [ -e "$DESTDIR$CONF" ]; then
    note "keeping existing $CONF (not overwritten; the example is config/raspberry-pi.toml)"
else
    install -m 0640 "$SRC/config/raspberry-pi.toml" "$DESTDIR$CONF"
    own root:"$USER_NAME" "$DESTDIR$CONF"
    say "wrote $CONF from config/raspberry-pi.toml: edit station.id, csms.url, csms.password and the pins"
fi

# --- systemd unit ----------------------------------------------------------------------------
install -m 0644 "$SRC/systemd/$UNIT" "$DESTDIR$UNIT_DIR/$UNIT"
note "unit: $UNIT_DIR/$UNIT"
install -m 0644 "$SRC/systemd/$WEB_UNIT" "$DESTDIR$UNIT_DIR/$WEB_UNIT"
note "unit: $UNIT_DIR/$WEB_UNIT (the web dashboard; not enabled)"
if [ -n "$DESTDIR" ]; then
    note "DESTDIR set: skipping systemctl daemon-reload / enable"
elif ! command -v systemctl >/dev/null; then
    note "systemctl not found: skipping daemon-reload / enable"
else
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    else
        note "systemd is not running: skipping daemon-reload"
    fi
    if systemctl enable "$UNIT" >/dev/null 2>&1; then
        say "enabled $UNIT (starts at boot; not started now)"
    else
        warn "systemctl enable $UNIT failed; enable it by hand later"
    fi
fi

# --- next steps ------------------------------------------------------------------------------
gpio_hint="pi"
if [ -r /proc/device-tree/model ] && tr -d '\0' </proc/device-tree/model | grep -q "Raspberry Pi 5"; then
    gpio_hint="pi5"
fi
cat <<EOF

ocpp-agent installed.
Next steps:
EOF
if [ -z "$EXTRAS" ]; then
    cat <<EOF
  * GPIO support is not installed (it only builds on a Pi). On the Pi, run
      sudo make install EXTRAS=$gpio_hint
    EXTRAS=pi5 installs gpiod (Pi 5, and any Pi on a kernel >= 6.6; set hal.gpio = "gpiod"),
    EXTRAS=pi installs RPi.GPIO (Pi 4 and older; hal.gpio = "rpi-gpio").
EOF
fi
cat <<EOF
  * edit the config:      sudoedit $CONF
    and check it:         sudo -u $USER_NAME ocpp-agent check-config $CONF
  * start and follow:     sudo systemctl start ocpp-agent && journalctl -u ocpp-agent -f
  * OCPP message log:     sudo -u $USER_NAME ocpp-agent log --limit 20
  * web dashboard:        install with EXTRAS=web, set [web] in $CONF, then
                          sudo systemctl enable --now ocpp-agent-web
EOF
