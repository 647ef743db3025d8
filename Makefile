# GlioWatch: `make demo` and `make test` work on a fresh machine of this kind.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install system demo test test-fast bench lock clean device-wheels viewer

# The OHIF viewer (issue 33): @ohif/app's built dist/ (~50 MB download, 213 MB unpacked), pinned, in an ignored folder.
OHIF_VERSION := 3.13.2
OHIF_DIR := build/ohif
OHIF_TGZ := $(OHIF_DIR)/ohif-app-$(OHIF_VERSION).tgz
OHIF_STAMP := $(OHIF_DIR)/package/dist/index.html

# Debian packages: Orthanc and its DICOMweb plugin, Chromium for the browser tests, dicom3tools (dciodvfy) for the
# write-back objects, and npm for the viewer only where the machine has none (Debian's npm conflicts with a NodeSource
# nodejs, which bundles its own npm).
system:
	@if ! command -v Orthanc >/dev/null || ! command -v chromium >/dev/null || ! command -v dciodvfy >/dev/null || ! command -v npm >/dev/null || [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then \
	  PKGS="orthanc orthanc-dicomweb chromium dicom3tools"; \
	  command -v npm >/dev/null || PKGS="$$PKGS npm"; \
	  echo ">> installing Debian packages ($$PKGS)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$PKGS; \
	fi

$(STAMP): requirements.lock requirements-nodeps.lock pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY)"; exit 1; }
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $(STAMP)

install: system $(STAMP) viewer

viewer: $(OHIF_STAMP)

$(OHIF_TGZ):
	@command -v npm >/dev/null || { echo "need npm (Debian package 'npm')"; exit 1; }
	mkdir -p $(OHIF_DIR)
	npm pack --silent @ohif/app@$(OHIF_VERSION) --pack-destination $(OHIF_DIR)

$(OHIF_STAMP): $(OHIF_TGZ)
	tar -xzf $(OHIF_TGZ) -C $(OHIF_DIR) package/dist package/package.json
	@grep -q '"version": "$(OHIF_VERSION)"' $(OHIF_DIR)/package/package.json
	@touch $(OHIF_STAMP)

demo: install
	$(BIN)/gliowatch demo

test: install
	PYTHONUNBUFFERED=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m benchmarks

# wheels the GPU check carries to the device machine (benchmarks/gpu_check.sh): MONAI, pure Python
device-wheels: $(STAMP)
	$(BIN)/pip download -q --no-deps -d .whl "$$(grep -o 'monai==[0-9.]*' pyproject.toml | head -1)"

clean:
	rm -rf $(VENV) state test-artifacts
