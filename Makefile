# The two commands (see README.md): `make book` builds the site, `make test` runs the tests.
# Both create .venv and install the pinned requirements on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_WAIT_POLICY := PASSIVE

.PHONY: test lint install-check

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check salience_lib tests benchmarks browser_tests book/_tools

# `pip install .` into a fresh virtualenv, then the installed library and CLI on two checkpoints.
install-check:
	bash .ci/install_check.sh

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: $(STAMP) lint
	@set +e; $(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# ---------------------------------------------------------------------------------------------
# The book: data -> models -> executed chapters -> static site in _build/html.
# `make book` (quick profile) or `make book PROFILE=full`; `make book DEVICE=cuda` on a GPU.
# Every step is a make target, so re-running with nothing changed does nothing: a chapter is
# executed again only when its source, the library, the data, the trained runs or the build
# parameters changed. The chapter list is _toc.yml: every `file:`/`root:` entry whose book/*.md
# has a kernelspec in its front matter is a notebook that papermill executes; other pages are copied.
PROFILE ?= quick
DEVICE ?= cpu
ifeq ($(PROFILE),quick)
DATA_N := 3600
SEEDS := 0 1 2 3 4
DATA_DIR := data/faces64
else ifeq ($(PROFILE),full)
DATA_N := 12000
SEEDS := 0 1 2 3 4 5 6 7 8 9
DATA_DIR := data/faces64-full
else
$(error PROFILE must be quick or full, got '$(PROFILE)')
endif
DATA_SIZE := 64
DATA_SEED := 0
DATA_WORKERS ?= 2
RUNS_DIR := runs/$(PROFILE)
RECIPES := xent cyborg
# The earlier variant of the CYBORG loss (true class, pooled features), for the page on the two
# protocols; in a folder of its own, so that the chapters comparing XENT and CYBORG see only those.
VARIANTS_DIR := $(RUNS_DIR)-variants
VARIANT_RECIPES := cyborg_pooled
ARCH := small_cnn
CELL_TIMEOUT ?= 1800

BUILD := _build
SRC := $(BUILD)/src
STAMPS := $(BUILD)/stamps
VENDOR := $(SRC)/_vendor
TOOLS := book/_tools

LIB := $(wildcard salience_lib/*.py salience_lib/*/*.py salience_lib/*/*/*.py)
TRAIN_LIB := $(wildcard $(addprefix salience_lib/,cli.py salience/*.py maps.py inference.py imaging.py data/*.py training/*.py models/*.py runtime/*.py))
DOCS := $(basename $(shell sed -nE 's/^[[:space:]]*(-[[:space:]]*)?(root|file):[[:space:]]*([^[:space:]#]+).*/\3/p' _toc.yml))
BOOK_FILES := $(shell find book -type f ! -path '$(TOOLS)/*' ! -path '*/.ipynb_checkpoints/*' ! -path '*/__pycache__/*')
NB_SOURCES := $(shell grep -l '^kernelspec:' $(filter %.md,$(BOOK_FILES)) /dev/null)
EXECUTED := $(patsubst %.md,$(SRC)/%.ipynb,$(filter $(NB_SOURCES),$(DOCS:=.md)))
STAGED := $(addprefix $(SRC)/,$(filter-out $(NB_SOURCES),$(BOOK_FILES)) _config.yml _toc.yml)
# Chapters run in their own folder (book/), so paths are relative to it, as in Jupyter.
PARAMS := profile=$(PROFILE) device=$(DEVICE) data_dir=../$(DATA_DIR) runs_dir=../$(RUNS_DIR)

# Write $(2) to file $(1) only when it differs, so the file's time changes only with its content.
define write-if-changed
@mkdir -p $(dir $(1)); printf '%s\n' '$(2)' > $(1).tmp; \
if cmp -s $(1).tmp $(1); then rm -f $(1).tmp; else mv $(1).tmp $(1); fi
endef

.PHONY: book browser-test pdf clean-book FORCE
.DELETE_ON_ERROR:

book: $(STAMPS)/html.stamp
	@echo "book: $(BUILD)/html/index.html ($(PROFILE) profile)"

$(STAMPS)/data-$(PROFILE).cfg: FORCE
	$(call write-if-changed,$@,n=$(DATA_N) size=$(DATA_SIZE) seed=$(DATA_SEED))

$(STAMPS)/params.cfg: FORCE
	$(call write-if-changed,$@,$(PARAMS))

# The data set: generated when missing, or when the generator or the profile's sizes changed.
$(DATA_DIR)/info.json: $(wildcard salience_lib/data/synthetic/*.py) salience_lib/data/layout.py $(STAMPS)/data-$(PROFILE).cfg | $(STAMP)
	$(PY) -m salience_lib make-data --out $(DATA_DIR) --n $(DATA_N) --size $(DATA_SIZE) --seed $(DATA_SEED) \
		--workers $(DATA_WORKERS) --overwrite
	@touch $@

# The models: the train command reuses complete runs of the same recipe (seconds) and trains the
# rest. Runs of an older recipe or data set are moved to runs/stale/, so that a chapter listing
# runs_dir finds exactly the current models. The manifest (run folders and validation accuracies)
# changes only when a run changed, and only then are the chapters executed again.
RUNS_MANIFEST := $(STAMPS)/runs-$(PROFILE).txt
$(STAMPS)/runs-$(PROFILE).stamp: $(DATA_DIR)/info.json $(TRAIN_LIB) | $(STAMP)
	@mkdir -p $(@D)
	set -o pipefail; { for loss in $(RECIPES); do \
		$(PY) -m salience_lib train --data $(DATA_DIR) --loss $$loss --seeds $(SEEDS) --arch $(ARCH) \
			--out $(RUNS_DIR) --device $(DEVICE) || exit 1; \
	done; for loss in $(VARIANT_RECIPES); do \
		$(PY) -m salience_lib train --data $(DATA_DIR) --loss $$loss --seeds $(SEEDS) --arch $(ARCH) \
			--out $(VARIANTS_DIR) --device $(DEVICE) || exit 1; \
	done; } | tee $(RUNS_MANIFEST).tmp
	@for run in $(RUNS_DIR)/*/ $(VARIANTS_DIR)/*/; do \
		run=$${run%/}; [ -d "$$run" ] && ! grep -q "^$$run[[:space:]]" $(RUNS_MANIFEST).tmp || continue; \
		stale=runs/stale/$(PROFILE)/$$(basename "$$run"); mkdir -p $$(dirname $$stale); rm -rf "$$stale"; \
		mv "$$run" "$$stale" && echo "moved stale run $$run to $$stale"; \
	done
	@if cmp -s $(RUNS_MANIFEST).tmp $(RUNS_MANIFEST); then rm -f $(RUNS_MANIFEST).tmp; \
	else mv $(RUNS_MANIFEST).tmp $(RUNS_MANIFEST); fi
	@touch $@
$(RUNS_MANIFEST): $(STAMPS)/runs-$(PROFILE).stamp ;

# One executed notebook per chapter, in the staged copy of the book that jupyter-book builds.
$(EXECUTED): $(SRC)/%.ipynb: %.md $(LIB) $(DATA_DIR)/info.json $(RUNS_MANIFEST) \
		$(STAMPS)/params.cfg $(TOOLS)/run_chapter.py | $(STAMP)
	$(PY) $(TOOLS)/run_chapter.py $< $@ --timeout $(CELL_TIMEOUT) $(addprefix --param ,$(PARAMS))

# The landing page pastes the findings the selection chapter glues ({glue:text}`selection.ipynb::...`);
# Sphinx pastes them only when it rebuilds the landing page, so that page runs again (seconds) after the chapter.
$(SRC)/book/intro.ipynb: $(SRC)/book/selection.ipynb

$(STAGED): $(SRC)/%: %
	@mkdir -p $(@D)
	cp $< $@

# Widget JavaScript and MathJax, served from the site itself (it must work offline). The widget
# bundle keeps its npm path under _static/widgets/, where book/_static/widgets-setup.js points
# RequireJS, so that it finds its fonts.
WIDGETS_DIST := @jupyter-widgets/html-manager/dist
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMPS)/vendor.stamp: node_modules/.package-lock.json Makefile
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/widgets/$(WIDGETS_DIST) $(VENDOR)/mathjax
	cp node_modules/requirejs/require.js $(VENDOR)/widgets/require.js
	cp node_modules/$(WIDGETS_DIST)/embed-amd.js node_modules/$(WIDGETS_DIST)/*.{woff,woff2,ttf,eot,svg} \
		$(VENDOR)/widgets/$(WIDGETS_DIST)/
	@# The bundle's CSS sometimes resolves its fonts one folder up, in _static/widgets/@jupyter-widgets/
	@# (timing-dependent: every time on the selection chapter's page, now and then on a small one): 404s.
	cp node_modules/$(WIDGETS_DIST)/*.{woff,woff2,ttf,eot,svg} $(VENDOR)/widgets/@jupyter-widgets/
	cp -r node_modules/mathjax/es5/. $(VENDOR)/mathjax/
	@mkdir -p $(@D) && touch $@

# Sphinx rebuilds only the pages whose source changed, and copies static files only when some page
# changed: a new configuration, table of contents or static file therefore rebuilds everything.
FULL_REBUILD_IF := $(STAMPS)/vendor.stamp $(SRC)/_config.yml $(SRC)/_toc.yml $(SRC)/book/_static/%
$(STAMPS)/html.stamp: $(STAGED) $(EXECUTED) $(STAMPS)/vendor.stamp | $(STAMP)
	$(VENV)/bin/jupyter-book build $(SRC) --path-output . -W -n --keep-going $(if $(filter $(FULL_REBUILD_IF),$?),--all)
	@touch $@

# Opens every page of the built site in headless Chromium, offline (browser_tests/test_site.py).
browser-test: $(STAMPS)/html.stamp
	@set +e; VOILA=$(CURDIR)/$(VENV)/bin/voila $(PY) -m pytest browser_tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no browser tests: failing"; exit 1; fi; exit $$rc

# The whole book as one PDF for course packs: headless Chromium prints every page of the built site
# (maths typeset, widgets at their first frame), pypdf merges and checks them (browser_tests/print_pdf.py).
# `make pdf PDF_ARGS=--no-solutions` leaves the exercises' solutions out. It prints every time it is
# asked (about a minute): the PDF depends on PDF_ARGS too. The check's numbers go to _build/book.json.
PDF_ARGS ?=
pdf: $(STAMPS)/html.stamp | $(STAMP)
	$(PY) browser_tests/print_pdf.py --site $(BUILD)/html --out $(BUILD)/book.pdf $(PDF_ARGS)

clean-book:
	rm -rf $(BUILD)

# ---------------------------------------------------------------------------------------------
# Benchmarks against pytorch-grad-cam, Captum, torchcam, Quantus and scikit-image (SPEC §8).
# `make bench` is the quick CPU run (a few minutes); `make bench BENCH_ARGS="--amp"` on a GPU runs
# the full one. The JSON line is also written to benchmarks/results/<device>-<mode>.json.
BENCH_STAMP := $(VENV)/.installed-bench
BENCH_ARGS ?= --quick
BENCH_OUT ?= benchmarks/results/$(if $(findstring --quick,$(BENCH_ARGS)),cpu-quick,full).json

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $(BENCH_STAMP)

.PHONY: bench
bench: $(BENCH_STAMP)
	$(PY) benchmarks/bench.py $(BENCH_ARGS) --out $(BENCH_OUT)
