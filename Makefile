# Two entry points on a fresh machine:  `make run` (the app on its demo model)
# and `make test` (the whole test suite). Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install system-deps

run: $(STAMP)
	$(BIN)/fsprec-gui --demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q torch==2.13.0
	touch $(STAMP)

# Xvfb and the X libraries Qt's xcb platform needs, for the one real-window test.
# Installed with apt when we are root; otherwise that test skips and says why.
XDEPS := xvfb libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 \
         libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0
system-deps:
	@command -v Xvfb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(XDEPS) >/dev/null; } \
	  || echo "note: Xvfb is not installed; the real-window test will be skipped"

# --- Faceswap integration tests (tests/integration) --------------------------------------------
# A second venv with Faceswap's own pins, used only to run Faceswap itself in the tests.
# `make test` creates it when Faceswap's source is present; otherwise those tests skip.
FACESWAP_SOURCE ?= ../shared/faceswap
FSVENV  := .fsvenv
FSSTAMP := $(FSVENV)/.installed
FSREQS  := tests/integration/requirements-faceswap.txt

.PHONY: faceswap-venv faceswap-venv-if-present

faceswap-venv: $(FSSTAMP)

$(FSSTAMP): $(FSREQS)
	test -x $(FSVENV)/bin/python || $(PYTHON) -m venv $(FSVENV)
	$(FSVENV)/bin/python -m pip install -q -r $(FSREQS)
	touch $(FSSTAMP)

faceswap-venv-if-present:
	@if [ -f "$(FACESWAP_SOURCE)/faceswap.py" ]; then $(MAKE) --no-print-directory faceswap-venv; \
	else echo "note: no Faceswap source at $(FACESWAP_SOURCE); its integration tests will skip"; fi

test: faceswap-venv-if-present
