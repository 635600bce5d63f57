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

DEMO_DATA := data/phe-sich-raw
DEMO_OUT := data/phe-sich

.PHONY: install demo test clean bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision first, pinned (ENVIRONMENT.md); then the project and its stack
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

DEMO_CLS := --image_size 128 --max_epochs 12 --batch_size 16 --num_workers 0
DEMO_SEG := --image_size 128 --max_epochs 6 --batch_size 8 --num_workers 0

demo: install
	$(VENV)/bin/medpipe synth phe-sich --out $(DEMO_DATA)
	$(VENV)/bin/medpipe prepare phe-sich --src $(DEMO_DATA) --out $(DEMO_OUT)
	$(VENV)/bin/medpipe train sich_cls --dataset_dir $(DEMO_OUT) --output_dir runs/sich_cls $(DEMO_CLS)
	$(VENV)/bin/medpipe evaluate sich_cls --ckpt_path runs/sich_cls/models/model.pt --dataset_dir $(DEMO_OUT) --output_dir runs/sich_cls $(DEMO_CLS)
	$(VENV)/bin/medpipe train sich_seg --dataset_dir $(DEMO_OUT) --output_dir runs/sich_seg $(DEMO_SEG)
	$(VENV)/bin/medpipe evaluate sich_seg --ckpt_path runs/sich_seg/models/model.pt --dataset_dir $(DEMO_OUT) --output_dir runs/sich_seg --cls_predictions runs/sich_cls/predictions.csv $(DEMO_SEG)
	@$(PY) -m medpipe.reporting.summary $(DEMO_OUT) runs/sich_cls runs/sich_seg

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) benchmarks/bench_prepare_phe_sich.py

clean:
	rm -rf runs data/phe-sich data/phe-sich-raw .cache .pytest_cache
