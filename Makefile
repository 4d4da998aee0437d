# Every install step lives here: `make test` on a fresh clone needs only python3.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
UV     := $(VENV)/bin/uv
# checkov pins conflict with the main lock, so it gets a venv of its own.
VENV_CHECKOV := .venv-checkov/.installed-stamp
# The FinOps Foundation's FOCUS validator wants Python >= 3.12 and numpy 1.26: a venv of its own,
# installed with pip (uv refuses its Requires-Python), its two sdists built from hashed backends.
FV       := .venv-focus-validator
VENV_FV  := $(FV)/.installed-stamp
FV_PIP   := $(FV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps

.PHONY: install demo test unit lint fmt crds chart bench clean podresources-stubs focus-validate k8s-proto prometheus images

install: $(STAMP)

# uv is pinned in the lock too, so `uv pip sync` keeps it.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip sync --python $(PY) requirements.txt
	$(UV) pip install --python $(PY) --no-deps -e .
	touch $(STAMP)

$(VENV_CHECKOV): requirements-checkov.txt $(STAMP)
	test -x .venv-checkov/bin/python || python3 -m venv .venv-checkov
	$(UV) pip sync --python .venv-checkov/bin/python requirements-checkov.txt
	touch $(VENV_CHECKOV)

$(VENV_FV): requirements-focus-validator.txt requirements-focus-validator-build.txt tests/contract/focus_validator.py
	test -x $(FV)/bin/python || python3 -m venv $(FV)
	$(FV_PIP) -r requirements-focus-validator-build.txt
	$(FV_PIP) --ignore-requires-python --no-build-isolation -r requirements-focus-validator.txt
	$(FV)/bin/python tests/contract/focus_validator.py --patch
	touch $(VENV_FV)

# Check an export yourself with the FinOps Foundation's validator (every data file, both formats).
EXPORT ?= sandboxer-demo/export
focus-validate: $(VENV_FV)
	$(FV)/bin/python tests/contract/focus_validator.py --validate $(EXPORT)

demo: $(STAMP)
	$(VENV)/bin/sandboxer demo

lint: $(STAMP)
	$(VENV)/bin/ruff check operator tests benchmarks
	$(VENV)/bin/ruff format --check operator tests benchmarks
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix operator tests benchmarks
	$(VENV)/bin/ruff format operator tests benchmarks

test: $(STAMP) $(VENV_CHECKOV) $(VENV_FV) prometheus lint
	$(PY) -m pytest

# Debian's Prometheus for tests/integration/test_prometheus_dashboard.py; nothing to do when
# installed, and without root or apt the test skips and says why.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends prometheus; \
	else echo "prometheus not installed and no root/apt: its test will be skipped"; fi; }

unit: $(STAMP)
	$(PY) -m pytest tests/unit

crds: $(STAMP)
	$(VENV)/bin/sandboxer crds --out crds
	$(VENV)/bin/sandboxer crds --out helm/sandboxer/crds

# values.yaml, values.schema.json, README values table, RBAC and dashboard from their Python sources.
chart: $(STAMP)
	$(PY) -m sandboxer.deploy.chartgen --chart helm/sandboxer

# Committed; tests/unit/test_podresources_stubs.py fails when they drift from the proto.
podresources-stubs: $(STAMP)
	cd operator && ../$(PY) -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. \
		sandboxer/metering/podresources/api.proto

# Upstream's Kubernetes protos for the embedded API's protobuf bodies; committed, and
# tests/unit/test_devcluster_protobuf.py fails when descriptors.binpb drifts from them.
# K8S_SRC holds k8s.io/api, apimachinery and apiextensions-apiserver checkouts at kubectl's version
# (v0.35.2) as api/, apimachinery/, apiextensions-apiserver/.
k8s-proto: $(STAMP)
	test -d "$(K8S_SRC)/api" || { echo "set K8S_SRC to a folder with api/ apimachinery/ apiextensions-apiserver/ at v0.35.2"; exit 2; }
	$(PY) -m sandboxer.devcluster.protobuf_gen $(K8S_SRC)

# Build the operator and agent images with podman on a Debian base made by mmdebstrap (no
# registry) and run them as non-root; minutes, so not part of `make test` (which skips it).
# Sizes land in .cache/image-sizes.json. Installs Debian's podman, mmdebstrap, runc when missing.
images: $(STAMP)
	@command -v podman >/dev/null && command -v mmdebstrap >/dev/null && command -v runc >/dev/null || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends podman mmdebstrap runc; \
	else echo "podman, mmdebstrap and runc are needed (Debian packages)"; exit 2; fi; }
	SANDBOXER_BUILD_IMAGES=1 $(PY) -m pytest tests/images -v -p no:logging

bench: $(STAMP)
	$(PY) benchmarks/run.py

# Re-resolve the lock from pyproject.toml (needs the package index).
.PHONY: lock
lock: $(STAMP)
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.txt
	$(UV) lock --python 3.11
	$(UV) pip compile requirements-checkov.in --python-version 3.11 --generate-hashes -o requirements-checkov.txt
	$(UV) pip compile requirements-focus-validator.in --python-version 3.12 --generate-hashes -o requirements-focus-validator.txt
	$(UV) pip compile requirements-focus-validator-build.in -c requirements-focus-validator.txt --python-version 3.11 --generate-hashes -o requirements-focus-validator-build.txt

clean:
	rm -rf $(VENV) .venv-checkov $(FV) .pytest_cache .mypy_cache .ruff_cache .cache
