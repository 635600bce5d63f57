# medpipe: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medpipe-installed

# Offline-safe environment for every process we start; nothing is written under HOME.
CACHE := $(CURDIR)/.cache
export YOLO_CONFIG_DIR := $(CACHE)/ultralytics
export MPLCONFIGDIR := $(CACHE)/matplotlib
export XDG_CACHE_HOME := $(CACHE)/xdg
export HF_HUB_OFFLINE := 1
export YOLO_OFFLINE := 1
export TORCH_HOME := $(CACHE)/torch
export PIP_DISABLE_PIP_VERSION_CHECK := 1


.PHONY: install demo test clean bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision first, pinned (ENVIRONMENT.md); then the project and its stack
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test,tracking,nnunet]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/medpipe run pipelines/phe_sich.yaml --work_dir runs/demo
	@$(PY) -m medpipe.reporting.summary data/phe-sich runs/demo/sich_cls runs/demo/sich_det runs/demo/sich_seg
	$(VENV)/bin/medpipe run pipelines/chest_xray.yaml --work_dir runs/demo/chest_xray
	$(VENV)/bin/medpipe run pipelines/pneumonia.yaml --work_dir runs/demo/pneumonia
	$(VENV)/bin/medpipe run pipelines/ankle_ct.yaml --work_dir runs/demo/ankle_ct --synth_patients 40 --epochs 10
	$(VENV)/bin/medpipe run pipelines/ich_subtypes.yaml --work_dir runs/demo/ich_subtypes --epochs 10

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) benchmarks/bench_prepare_phe_sich.py
	$(PY) benchmarks/bench_prepare_cxr14.py

clean:
	rm -rf runs data .cache .pytest_cache
