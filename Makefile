# Two commands on a fresh clone: `make reproduce` and `make test`. Both create .venv when missing
# and are idempotent. Everything the project needs is installed here, nothing by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= demo
JOBS ?= 2
STAMP := $(VENV)/.installed
MATHJAX := book/_static/mathjax/tex-mml-chtml.js
PIP_QUIET := 2>&1 | grep -v -E "^WARNING: Location|ignored: it is neither" || true

.PHONY: reproduce test book grid bench venv tools clean-runs

reproduce: venv $(MATHJAX)  ## run params/$(PROFILE).yaml (demo: the whole grid) and build the book
	@if [ "$(PROFILE)" = "demo" ]; then $(PY) -m genemask.cli grid params/$(PROFILE).yaml --jobs $(JOBS); \
	else echo "profile $(PROFILE): building the book from committed results/$(PROFILE) (no retraining)"; fi
	@GENEMASK_PROFILE=$(PROFILE) $(MAKE) --no-print-directory book
	@echo "book: file://$(CURDIR)/book/_build/html/index.html"

test: venv tools $(MATHJAX)  ## unit tests and nbval on notebooks/
	$(VENV)/bin/pytest -q

book: venv $(MATHJAX)  ## build the Jupyter Book (offline, warnings are errors; every page, since the profile is not in the sources)
	HF_HUB_OFFLINE=1 $(VENV)/bin/jupyter-book build book/ --all -W -n --keep-going -q

grid: venv  ## run a params file: make grid PROFILE=cpu JOBS=2
	$(PY) -m genemask.cli grid params/$(PROFILE).yaml --jobs $(JOBS)

bench: venv tools  ## performance benchmarks (each prints ratios against a named peer)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the environment into $(VENV) (first time: about a minute)"
	@$(PY) -m pip install -q -U pip $(PIP_QUIET)
	@$(PY) -m pip install -q -e '.[test]' $(PIP_QUIET)
	@$(PY) -c "import genemask, torch, transformers, papermill, jupyter_book" || { echo "environment install failed"; exit 1; }
	@touch $(STAMP)

# jellyfish (Debian package, not the PyPI string library) is the reference k-mer counter for the
# PMI tests and benchmark; without root or apt the tests that need it skip with a reason.
tools:
	@command -v jellyfish >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing jellyfish (Debian package)"; \
	    (apt-get install -y -q jellyfish >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q jellyfish >/dev/null 2>&1)) \
	      || echo "could not install jellyfish: tests that compare with it will skip"; \
	  else echo "jellyfish not found and cannot apt-get it: tests that compare with it will skip"; fi; }

# MathJax for offline math in the book, from the npm registry (never from a CDN at page view).
$(MATHJAX):
	@echo "fetching MathJax 3 from the npm registry"
	@tmp=$$(mktemp -d) && (cd $$tmp && npm pack -q mathjax@3 >/dev/null 2>&1 && tar xzf mathjax-*.tgz) \
	  && mkdir -p book/_static/mathjax/output/chtml \
	  && cp $$tmp/package/es5/tex-mml-chtml.js book/_static/mathjax/ \
	  && cp -r $$tmp/package/es5/output/chtml/fonts book/_static/mathjax/output/chtml/ \
	  && rm -rf $$tmp || { echo "could not fetch MathJax: math will not render offline"; rm -rf $$tmp; mkdir -p book/_static/mathjax; touch $(MATHJAX); }

clean-runs:  ## forget the demo grid's cached runs
	rm -rf runs/demo
