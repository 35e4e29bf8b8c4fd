# deephar-lightning: every command a user runs. `make help` lists them.
PY      ?= .venv/bin/python
VENV    ?= .venv
TORCH   ?= torch==2.13.0
LOCK    ?= requirements/constraints.txt
# what litdata imports at run time (litdata itself is installed without its requirements: install)
LITDATA_DEPS = boto3 obstore tifffile filelock lightning-utilities requests urllib3
DATA    ?= data
OVERRIDES ?=

.PHONY: help install lock test lint format bench bench-keras-env demo synthetic ablation train-mpii train-h36m train-penn train-ntu clean

help: ## list the targets (this text)
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

install: ## create .venv; torch (pinned, first), the project with test extras, litdata: every version from $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade -c $(LOCK) pip
	$(PY) -m pip install -q -c $(LOCK) $(TORCH)
	$(PY) -m pip install -q -c $(LOCK) -e '.[test]'
	# litdata (datamodules.streaming) without its torchvision requirement: PyPI's torchvision wheel
	# is built for the CUDA torch and breaks `import torchvision` (hence lightning) on a CPU torch;
	# litdata imports it only for image/video serialisers that the streaming source does not use.
	$(PY) -m pip install -q -c $(LOCK) --no-deps 'litdata>=0.2.50'
	$(PY) -m pip install -q -c $(LOCK) $(LITDATA_DEPS)

lock: ## upgrade the install set to the newest versions pyproject allows and write them to $(LOCK)
	# In a fresh venv, so that nothing left over gets pinned: make lock VENV=.venv-lock
	# PY=.venv-lock/bin/python; then `make test` on it and commit $(LOCK). torch stays $(TORCH).
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q --upgrade --upgrade-strategy eager -e '.[test]'
	$(PY) -m pip install -q --upgrade --no-deps 'litdata>=0.2.50'
	$(PY) -m pip install -q --upgrade --upgrade-strategy eager $(LITDATA_DEPS)
	{ echo "# Exact versions of the whole install set: \`make install\` passes this file to pip (-c)."; \
	  echo "# Written by \`make lock\` (pip freeze, less the project and torch, which the Makefile pins)."; \
	  $(PY) -m pip freeze --all --exclude-editable | grep -v '^torch=='; } > $(LOCK)

test: ## run the test suite on the CPU (skips listed at the end: ../shared enables most)
	$(PY) -m pytest -x -q -rs

lint: ## ruff (check + format) and the import-linter architecture contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: ## CPU (and GPU when present) benchmarks side by side with Keras; writes benchmarks/results/
	OMP_WAIT_POLICY=PASSIVE $(PY) -m benchmarks.run

bench-keras-env: ## the official-architecture Keras reference for `make bench` (separate venv, TF 2.15 CPU)
	test -x .venv-keras/bin/python || python3 -m venv .venv-keras
	.venv-keras/bin/python -m pip install -q tensorflow-cpu==2.15.1 h5py

synthetic: ## write the demo-sized synthetic world in the four real formats into $(DATA)/synthetic
	$(PY) -m datamodules.synthetic --out $(DATA)/synthetic --size demo --seed 0

demo: ## the whole multitask pipeline on the synthetic world, on the CPU (~10 min on 2 idle cores)
	$(PY) -m experiments.demo

ablation: ## Table 5 structure (provided/estimated poses, +FT, +multi-clip); DATASET=ntu|penn|synthetic
	$(PY) -m experiments.ablation --ft --multiclip --dataset $(or $(DATASET),synthetic) $(OVERRIDES)

clean: ## remove run outputs (runs/, predictions/, wandb/) and caches; checkpoints/ and data/ stay
	rm -rf runs predictions wandb .pytest_cache

# ---- training (data roots from variables; extra overrides in OVERRIDES="a=b c=d") ----
MPII_ROOT ?= $(DATA)/mpii
H36M_ROOT ?= $(DATA)/h36m
PENN_ROOT ?= $(DATA)/PennAction
NTU_ROOT  ?= $(DATA)/ntu

train-mpii: ## 2D pose on MPII (MPII_ROOT=...)
	$(PY) -m experiments.train $(or $(EXP),mpii) data.root=$(MPII_ROOT) $(OVERRIDES)
train-h36m: ## 3D pose on Human3.6M + MPII (H36M_ROOT=... MPII_ROOT=...)
	$(PY) -m experiments.train $(or $(EXP),h36m) data.root=$(H36M_ROOT) data.mpii_root=$(MPII_ROOT) $(OVERRIDES)
train-penn: ## action recognition on Penn Action (PENN_ROOT=...; EXP=penn_poses: annotated poses)
	$(PY) -m experiments.train $(or $(EXP),penn) data.root=$(PENN_ROOT) $(OVERRIDES)
train-ntu: ## action recognition on NTU RGB+D (NTU_ROOT=...; EXP=ntu_kinect: Kinect poses)
	$(PY) -m experiments.train $(or $(EXP),ntu) data.root=$(NTU_ROOT) $(OVERRIDES)
