# ocpp-agent: developer entry points. Every target works from a clean clone on Debian.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages the tests need: socat (pty pairs for Modbus/RFID), systemd (systemd-analyze),
# faketime (libfaketime: a wrong, then stepped, board clock for the daemon alone),
# chromium + chromium-driver (the dashboard's browser tests drive Debian's headless chromium via selenium).
TEST_DEBS := socat systemd faketime chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-slow reliability bench docs venv test-venv system-deps clean install uninstall

$(BIN)/ocpp-agent: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.test-installed: $(BIN)/ocpp-agent
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/ocpp-agent
test-venv: $(VENV)/.test-installed

system-deps:
	@missing=""; \
	command -v socat >/dev/null || missing="$$missing socat"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v faketime >/dev/null || missing="$$missing faketime"; \
	command -v /usr/bin/chromium >/dev/null || missing="$$missing chromium"; \
	command -v /usr/bin/chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

demo: venv
	$(BIN)/ocpp-agent demo

# One worker more than there are cores: the suite waits on sockets and timers more than it computes
# (2 cores: 2 workers 3 min 22 s, 3 workers 2 min 38 s; 4 made timing-sensitive e2e tests flaky).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

test: test-venv system-deps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

test-slow: test-venv system-deps
	$(BIN)/python -m pytest -q -m slow

# Full-size reliability, security and fault-injection suite (~45 min, 30 of them soak; RELIABILITY_SOAK_S=180
# for a shorter soak), then docs/RELIABILITY.md from its figures, written even if a goal is missed.
RELIABILITY_FIGURES := build/reliability/figures.json
reliability: test-venv system-deps
	rm -f $(RELIABILITY_FIGURES)
	RELIABILITY_FIGURES=$(RELIABILITY_FIGURES) $(BIN)/python -m pytest -q -m 'not slow' tests/reliability; \
	status=$$?; $(BIN)/python -m tests.reliability.report $(RELIABILITY_FIGURES) docs/RELIABILITY.md && exit $$status

bench: test-venv
	$(BIN)/python -m tests.bench

docs: venv
	$(BIN)/ocpp-agent pics --ocpp 1.6 > docs/PICS-1.6.md
	$(BIN)/ocpp-agent pics --ocpp 2.0.1 > docs/PICS-2.0.1.md
	$(BIN)/ocpp-agent pics --ocpp 2.1 > docs/PICS-2.1.md

# Install as a systemd service (see README, "Installing on a Raspberry Pi"): `sudo make install`.
# DESTDIR=/some/root stages into a tree; EXTRAS=pi (RPi.GPIO) or EXTRAS=pi5 (gpiod) adds GPIO support,
# EXTRAS=web (or pi,web / pi5,web) the dashboard's aiohttp; its unit ocpp-agent-web.service is installed disabled.
install:
	DESTDIR="$(DESTDIR)" PYTHON="$(PYTHON)" EXTRAS="$(EXTRAS)" scripts/install.sh

# Removes the unit and /opt/ocpp-agent; keeps /etc/ocpp-agent and /var/lib/ocpp-agent.
uninstall:
	DESTDIR="$(DESTDIR)" scripts/uninstall.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
