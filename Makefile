# Two commands on a fresh machine (Python 3.10+):
#
#   make test         the test suite                 (PYTEST_ARGS='-m "not slow"' for the fast part)
#   make quickstart   python -m enas_lightning experiment=quickstart   (ARGS='...' adds overrides)
#
# Each creates the virtual environment $(VENV) on first use (torch, then this project with its
# dev and sweeps extras, as the README's pip commands do) and reuses it afterwards; it is
# reinstalled when setup.cfg or pyproject.toml change. torch is the CPU build by default; a GPU
# build is one variable away:
#
#   make quickstart TORCH_INDEX=https://download.pytorch.org/whl/cu124
#
# torch comes from TORCH_INDEX (PyTorch's own index: +cpu, +cu124, ... builds); where that index
# cannot be reached, from PyPI with a note saying so. TORCH_INDEX= (empty) takes PyPI's default
# build (CUDA on Linux, CPU on macOS). TORCH='torch==X.Y.Z' pins another version.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
EXTRAS ?= dev,sweeps
PYTEST_ARGS ?=
ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test quickstart venv clean-venv

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

quickstart: $(STAMP)
	$(BIN)/python -m enas_lightning experiment=quickstart $(ARGS)

venv: $(STAMP)

# torch first (from TORCH_INDEX), so that installing the project does not pull another build
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
ifeq ($(strip $(TORCH_INDEX)),)
	$(BIN)/python -m pip install -q '$(TORCH)'
else
	$(BIN)/python -m pip install -q --retries 0 --timeout 15 '$(TORCH)' --index-url $(TORCH_INDEX) \
	  || { echo "make: $(TORCH_INDEX) not reachable: $(TORCH) from PyPI instead"; \
	       $(BIN)/python -m pip install -q '$(TORCH)'; }
endif
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
