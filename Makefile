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
# Kernels the book and the grid start log nothing below CRITICAL (ipykernel's "running over TCP
# without encryption" warning, once per page, is library chatter).
export IPYTHONDIR := $(CURDIR)/.cache/ipython
KERNEL_CONFIG := $(IPYTHONDIR)/profile_default/ipython_kernel_config.py

.PHONY: reproduce test book grid status verify bench venv tools clean-runs

# Each phase prints its time, wall and CPU (its child processes included), e.g. "time: demo grid:
# 412 s wall, 640 s user + 50 s sys CPU": the CPU time still means something on a shared, busy box.
PHASE_TIME = TIMEFORMAT="time: $(1): %0R s wall, %0U s user + %0S s sys CPU"; time
reproduce:  ## run params/$(PROFILE).yaml (demo: the whole grid) and build the book
	@$(call PHASE_TIME,environment) { $(MAKE) --no-print-directory venv $(MATHJAX) $(KERNEL_CONFIG); }
	@if [ "$(PROFILE)" = "demo" ]; then $(call PHASE_TIME,demo grid) { $(PY) -m genemask.cli grid params/$(PROFILE).yaml --jobs $(JOBS); }; \
	else echo "profile $(PROFILE): building the book from committed results/$(PROFILE) (no retraining)"; fi
	@$(call PHASE_TIME,book) { GENEMASK_PROFILE=$(PROFILE) $(MAKE) --no-print-directory book; }
	@echo "book: file://$(CURDIR)/book/_build/html/index.html"

# Two workers (pytest-xdist; -n auto is capped at 2 in tests/conftest.py), each file on one worker,
# the slowest files first (tests/conftest.py orders them). `make test XDIST=` runs serially.
XDIST ?= -n auto --dist loadfile --no-loadscope-reorder
test: venv tools $(MATHJAX) $(KERNEL_CONFIG)  ## unit tests and nbval on notebooks/
	$(VENV)/bin/pytest -q $(XDIST)

# The book executes pages through jupyter-cache (execute_notebooks: cache), one cache per
# (profile, results, library) fingerprint: a page re-executes only when its code changed or when
# what it reads did; Sphinx re-reads every page (--all), which takes the outputs from the cache.
# Pages not yet in the cache are executed first, JOBS at a time (genemask.report.book_execute:
# jupyter-book 1.x executes one page at a time), so the build itself executes none.
book: venv $(MATHJAX) $(KERNEL_CONFIG)  ## build the Jupyter Book (offline, warnings are errors)
	@fp=$$($(PY) -c "from genemask.report.provenance import book_fingerprint; print(book_fingerprint())") \
	  && mkdir -p book/_build/.caches/$$fp && rm -rf book/_build/.jupyter_cache && ln -s .caches/$$fp book/_build/.jupyter_cache
	@HF_HUB_OFFLINE=1 $(PY) -m genemask.report.book_execute book --cache book/_build/.jupyter_cache --jobs $(JOBS)
	@HF_HUB_OFFLINE=1 $(VENV)/bin/jupyter-book build book/ --all -W -n --keep-going -q

$(KERNEL_CONFIG):
	@mkdir -p $(dir $@) && echo 'c.IPKernelApp.log_level = "CRITICAL"' > $@

grid: venv $(KERNEL_CONFIG)  ## run a params file: make grid PROFILE=cpu JOBS=2
	$(PY) -m genemask.cli grid params/$(PROFILE).yaml --jobs $(JOBS)

status: venv  ## every cell of a params file: done and fresh, verified, stale, or to run (make status PROFILE=cpu)
	@$(PY) -m genemask.cli grid params/$(PROFILE).yaml --status

verify: venv $(KERNEL_CONFIG)  ## rerun stale cells in scratch folders and compare with results/ (make verify PROFILE=cpu [SAMPLE=3])
	$(PY) -m genemask.cli grid params/$(PROFILE).yaml --verify $(if $(SAMPLE),--sample $(SAMPLE))

# Every benchmark runs, even after a miss; each prints `target ...: met|MISSED` lines and exits 1 on a
# miss, and the target fails at the end naming the benchmarks that missed. bench_memory runs an
# 80-step LOGO run with an evaluation every 40 steps here (its own default, 2,000 steps, is the long
# check; the leak it guards against grew 13 MB a step, a gigabyte in 80).
BENCH_ARGS_bench_memory := --steps 80 --every 20 --eval-steps 40
bench: venv tools  ## performance benchmarks (each prints ratios against a named peer; fails at the end on any miss)
	@missed=""; for b in benchmarks/bench_*.py; do name=$$(basename $$b .py); echo "== $$b"; \
	  case $$name in bench_memory) args="$(BENCH_ARGS_bench_memory)";; *) args="";; esac; \
	  start=$$(date +%s); $(PY) $$b $$args || missed="$$missed $$name"; echo "($$name: $$(( $$(date +%s) - start )) s)"; done; \
	  if [ -n "$$missed" ]; then echo "make bench: targets missed in:$$missed"; exit 1; else echo "make bench: every target met"; fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the environment into $(VENV) (first time: about a minute)"
	@$(PY) -m pip install -q -U pip $(PIP_QUIET)
	@$(PY) -m pip install -q -e '.[workflow,book,test]' $(PIP_QUIET)
	@$(PY) -c "import genemask, torch, transformers, papermill, jupyter_book, snakemake" || { echo "environment install failed"; exit 1; }
	@touch $(STAMP)

# Debian packages the tests and benchmarks compare with or drive: jellyfish (not the PyPI string
# library), the reference k-mer counter for the PMI tests and benchmark, and chromium, which the book
# tests use to measure every rendered table against its page's content column. Without root or apt
# the tests that need one skip with a reason.
TOOLS := jellyfish chromium
tools:
	@for tool in $(TOOLS); do command -v $$tool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $$tool (Debian package)"; \
	    (apt-get install -y -q $$tool >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$tool >/dev/null 2>&1)) \
	      || echo "could not install $$tool: tests that need it will skip"; \
	  else echo "$$tool not found and cannot apt-get it: tests that need it will skip"; fi; }; done

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
