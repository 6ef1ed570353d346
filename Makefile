# Two entry points on a fresh machine:  `make run` (the app on its demo model)
# and `make test` (the whole test suite). Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# Test files are spread over one pytest-xdist worker per core (at most 4: a worker may hold a
# Keras backend, and the Faceswap tests two Faceswap processes of up to 4.5 GB); each file stays in
# one worker, so its module fixtures are built once. TEST_JOBS=0 runs everything in-process.
TEST_JOBS ?= $(shell $(PYTHON) -c "import os; print(min(4, os.cpu_count() or 1))")
# The core tests again with the POSIX fast paths off (hard links, copy_file_range, reflinks,
# pread): the code Windows and link-less file systems run (issue 13).
CORE_TESTS := tests/test_convert.py tests/test_bad_input.py tests/test_tools.py \
              tests/test_trust.py tests/test_modelfile.py tests/test_precision.py

.PHONY: run test test-portable lint install system-deps wheelhouse dist bundle

run: $(STAMP)
	$(BIN)/fsprec-gui --demo

test: $(STAMP) system-deps wheelhouse lint
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)
	$(MAKE) test-portable

test-portable: $(STAMP)
	FSPREC_PORTABLE=1 $(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile $(CORE_TESTS)

install: $(STAMP)

# ruff, then the import contracts of pyproject.toml. fsprec.core / fsprec.gui are mapped from
# core/ and gui/, so import-linter reads them through an fsprec/ folder of symlinks.
IMPORTLINT := build/importlint
lint: $(STAMP)
	$(BIN)/ruff check .
	@mkdir -p $(IMPORTLINT)/fsprec
	@for d in core gui resources; do ln -sfn ../../../$$d $(IMPORTLINT)/fsprec/$$d; done
	PYTHONPATH=$(IMPORTLINT) $(BIN)/lint-imports --no-cache

# The tests need every Keras backend they exercise: TensorFlow (the default) and torch.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,tensorflow,torch,package]' torch==2.13.0
	touch $(STAMP)

# Wheels of the core dependencies and the build backend, so that the packaging tests build and
# install fsprec into a fresh virtual environment without the package index.
WHEELHOUSE := .whl
wheelhouse: $(WHEELHOUSE)/.ready
$(WHEELHOUSE)/.ready: pyproject.toml | $(STAMP)
	$(BIN)/python -m pip wheel -q --wheel-dir $(WHEELHOUSE) . 'setuptools>=77'
	rm -f $(WHEELHOUSE)/faceswap_precision-*.whl
	touch $@

# The wheel and the sdist in dist/, checked by twine.
dist: $(STAMP)
	rm -rf dist/faceswap_precision-* dist/faceswap-precision-*
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/faceswap_precision-*

# The standalone app: dist/fsprec/ (a folder with the fsprec-gui launcher; no Python needed).
# Rebuilt only when a source file or the spec changed.
BUNDLE_SOURCES := $(shell find core gui resources packaging -type f -not -path '*/__pycache__/*')
bundle: dist/fsprec/.built
dist/fsprec/.built: $(BUNDLE_SOURCES) pyproject.toml | $(STAMP)
	$(BIN)/python -m PyInstaller --noconfirm --clean --log-level WARN \
	  --distpath dist --workpath build/pyinstaller packaging/fsprec.spec
	touch $@

# Xvfb and the X libraries Qt's xcb platform needs, for the real-window tests, and
# desktop-file-validate for the menu-entry test, mkfs.xfs and mkfs.btrfs for the reflink test.
# Installed with apt when we are root; otherwise those tests skip and say why.
XDEPS := xvfb libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 \
         libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 desktop-file-utils \
         xfsprogs btrfs-progs
system-deps:
	@{ command -v Xvfb && command -v desktop-file-validate && command -v mkfs.xfs \
	   && command -v mkfs.btrfs; } >/dev/null 2>&1 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq \
	       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(XDEPS) >/dev/null; } \
	  || echo "note: Xvfb, desktop-file-utils or xfsprogs/btrfs-progs is missing; the tests that need them will skip"

# --- Faceswap integration tests (tests/integration) --------------------------------------------
# A second venv with Faceswap's own pins, used only to run Faceswap itself in the tests.
# `make test` creates it when Faceswap's source is present; otherwise those tests skip.
FACESWAP_SOURCE ?= ../shared/faceswap
FSVENV  := .fsvenv
FSSTAMP := $(FSVENV)/.installed
FSREQS  := tests/integration/requirements-faceswap.txt

.PHONY: faceswap-venv faceswap-venv-if-present test-faceswap

# The integration part alone (`make test` runs it with the rest).
test-faceswap: $(STAMP) faceswap-venv-if-present
	$(BIN)/python -m pytest -q -m faceswap tests/integration $(PYTEST_ARGS)

faceswap-venv: $(FSSTAMP)

$(FSSTAMP): $(FSREQS)
	test -x $(FSVENV)/bin/python || $(PYTHON) -m venv $(FSVENV)
	$(FSVENV)/bin/python -m pip install -q -r $(FSREQS)
	touch $(FSSTAMP)

faceswap-venv-if-present:
	@if [ -f "$(FACESWAP_SOURCE)/faceswap.py" ]; then $(MAKE) --no-print-directory faceswap-venv; \
	else echo "note: no Faceswap source at $(FACESWAP_SOURCE); its integration tests will skip"; fi

test: faceswap-venv-if-present
