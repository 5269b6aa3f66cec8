# tdgui — the two commands a newcomer needs: `make run` and `make test`.
# Both set up what is missing themselves: Debian packages (scripts/system-deps.sh), the venv, pip.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint typecheck pytest selftest soak bench package install-desktop sandbox clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

## Start the desktop app. With no display it says so and stops (an invisible window helps
## nobody); `make run XVFB=1` starts it on an invisible Xvfb anyway, for trying things out.
## Ctrl-C quits it.
run: setup
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		exec $(VENV)/bin/tdgui; \
	elif [ -n "$(XVFB)" ]; then \
		echo "No display: starting tdgui on an invisible Xvfb screen (XVFB=1); nothing will show. Ctrl-C stops it."; \
		exec xvfb-run -a -s "-screen 0 1280x800x24" $(VENV)/bin/tdgui; \
	else \
		$(VENV)/bin/tdgui; status=$$?; \
		echo "make run: on a machine without a screen, 'make run XVFB=1' starts the app on an invisible Xvfb (for testing only)." >&2; \
		exit $$status; \
	fi

## Lint, type-check, then the whole test suite with a real Secret Service and Qt offscreen.
test: setup lint typecheck pytest selftest

lint: setup
	$(VENV)/bin/ruff check tdgui tests bench
	$(VENV)/bin/ruff format --check tdgui tests bench
	$(VENV)/bin/lint-imports --no-cache

typecheck: setup
	$(VENV)/bin/mypy

pytest: setup
	QT_QPA_PLATFORM=offscreen QTWEBENGINE_DISABLE_SANDBOX=1 \
		scripts/with-keyring.sh $(VENV)/bin/pytest -q -p no:cacheprovider --durations=15

## The desktop self-test in a real window under Xvfb; screenshots go to build/screenshots/.
selftest: setup
	mkdir -p build/screenshots
	env -u QT_QPA_PLATFORM QTWEBENGINE_DISABLE_SANDBOX=1 \
		xvfb-run -a -s "-screen 0 1280x800x24" \
		scripts/with-keyring.sh $(VENV)/bin/tdgui --self-test --screenshot build/screenshots

soak: setup
	TD_SOAK=1 QT_QPA_PLATFORM=offscreen QTWEBENGINE_DISABLE_SANDBOX=1 \
		scripts/with-keyring.sh $(VENV)/bin/pytest -q -p no:cacheprovider tests/reliability

bench: setup
	QTWEBENGINE_DISABLE_SANDBOX=1 scripts/with-keyring.sh $(PY) bench/run_all.py

package: setup
	bash scripts/package.sh

install-desktop: setup
	bash scripts/install-desktop.sh "$(abspath $(VENV))/bin/tdgui"

sandbox: setup
	$(VENV)/bin/tdgui sandbox

clean:
	rm -rf build dist .mypy_cache .ruff_cache
