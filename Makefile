# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# setuptools<81: tensorflow-hub (pulled in by tf-models-official) imports pkg_resources.
	$(PY) -m pip install -q --upgrade pip "setuptools<81" wheel
	$(PY) -m pip install -q -c constraints.txt -e ".[test,bench,beam]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m electra_tf.demo --output_dir=$(DEMO_DIR)

bench: $(STAMP)
	$(PY) benchmarks/corpus_builder.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/inference.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
