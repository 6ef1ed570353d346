# Two entry points on a fresh machine:  `make run` (the app on its demo model)
# and `make test` (the whole test suite). Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# The core tests again with the POSIX fast paths off (hard links, copy_file_range, reflinks,
# pread): the code Windows and link-less file systems run (issue 13).
CORE_TESTS := tests/test_convert.py tests/test_bad_input.py tests/test_tools.py \
              tests/test_trust.py tests/test_modelfile.py tests/test_precision.py

.PHONY: run test test-portable install system-deps

run: $(STAMP)
	$(BIN)/fsprec-gui --demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) test-portable

test-portable: $(STAMP)
	FSPREC_PORTABLE=1 $(BIN)/python -m pytest -q $(CORE_TESTS)

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
