# VAURA Studio developer tasks. `make run` and `make test` set everything up on a fresh Debian machine.

VENV ?= .venv
PYTHON ?= python3
BUILD ?= build
PYTEST_ARGS ?=
RUN_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp
DEMO_CLIP := resources/examples/demo.mp4
# An ALSA configuration whose default pcm discards audio: PortAudio then has an output device to open
# (real streams, real callbacks) on machines without a sound card, such as CI.
ALSA_NULL_CONF := $(BUILD)/alsa-null.conf

# PortAudio (sounddevice), the libraries Qt loads even offscreen, Xvfb for tests that need a real X server,
# and ffmpeg for making test media (the app itself never runs it).
APT_PACKAGES := libportaudio2 libxcb-cursor0 libegl1 libxkbcommon-x11-0 libgl1 libfontconfig1 libdbus-1-3 \
	libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-xinerama0 libxcb-randr0 \
	libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 xvfb ffmpeg

.DEFAULT_GOAL := help
.PHONY: help setup system-packages test run demo lint format bench bundle appimage clean distclean

help:
	@echo "make run        set everything up and open VAURA Studio (on $(DEMO_CLIP) when present;"
	@echo "                RUN_ARGS=--quit-after-ms=3000 for a smoke test)"
	@echo "make test       set everything up, lint, check import rules and run the tests"
	@echo "make demo       generate Foley for $(DEMO_CLIP) into out/demo.mp4"
	@echo "make bench      measure the engine's speed and memory (vaura bench)"
	@echo "make bundle     build the self-contained app folder dist/vaura-studio with PyInstaller and"
	@echo "                run its --self-test offscreen (installers/README.md)"
	@echo "make appimage   wrap that folder into an AppImage (needs appimagetool)"
	@echo "make lint       ruff check, ruff format --check, lint-imports"
	@echo "make format     ruff format and ruff's safe fixes"
	@echo "make setup      system packages (as root), $(VENV), pip install -e '.[dev]'"
	@echo "make clean      remove build outputs and caches; make distclean also removes $(VENV)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

# Installs what is missing when run as root (CI, containers); otherwise says what to install and goes on.
system-packages:
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
		echo "Not a Debian system: make sure these (or your distribution's equivalents) are installed:"; \
		echo "  $(APT_PACKAGES)"; \
		exit 0; \
	fi; \
	missing=""; \
	for pkg in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ ! -x $(BIN)/python ] && ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
		missing="$$missing python3-venv"; \
	fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian packages:$$missing"; \
		apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
		echo "Missing Debian packages; install them with:"; \
		echo "  sudo apt-get install --no-install-recommends$$missing"; \
	fi

$(ALSA_NULL_CONF): Makefile
	@mkdir -p $(@D)
	@printf 'pcm.!default {\n    type null\n}\n' > $@.tmp && mv $@.tmp $@

test: setup $(ALSA_NULL_CONF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	QT_QPA_PLATFORM=offscreen ALSA_CONFIG_PATH=$(abspath $(ALSA_NULL_CONF)) \
		$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

run: setup
	$(BIN)/python main.py $(RUN_ARGS) $(wildcard $(DEMO_CLIP))

demo: setup
	@mkdir -p out
	$(BIN)/vaura generate $(DEMO_CLIP) -o out/demo.mp4

bench: setup
	$(BIN)/vaura bench

bundle: setup $(ALSA_NULL_CONF)
	$(BIN)/python -m pip install -e '.[bundle]'
	ALSA_CONFIG_PATH=$(abspath $(ALSA_NULL_CONF)) $(BIN)/python installers/build_bundle.py --check

appimage: bundle
	installers/linux/build_appimage.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(BUILD) dist .pytest_cache .ruff_cache .import_linter_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
