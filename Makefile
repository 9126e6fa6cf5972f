# Two commands on a fresh machine:
#   make book   -> .venv with the locked dependencies, executes the chapters, writes _build/html
#   make test   -> the same set-up, then nbval (strict) over book/, the package's unit tests and nbval under
#                  three CPU code paths (make cpu-paths), and the built site opened in headless Chromium
#                  (make browser; installs chromium with apt-get if missing)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book site browser-assets test disk unit nbval cpu-paths browser venv vendor lock clean data train notebooks classroom

# MathJax, served from the site itself so that the pages work offline (see _config.yml). Not in _static/:
# Jupyter Book adds every .js file under _static/ to every page.
# onnxruntime-web runs the teaching ZFNet on the page "Your own picture" (book/your_image). 1.18.0: its
# ort.wasm.min.js is a classic script (global `ort`) with the Emscripten glue inside, so a page opened from file://
# (no fetch, no import() of .mjs) can run it; later versions import() a separate .mjs. The single-thread SIMD
# WebAssembly binary is embedded as base64 in a script (file:// pages cannot fetch it) and given to ort as a data: URL.
NPM_PACKAGES := mathjax@3.2.2 onnxruntime-web@1.18.0
ORT_DIST     := _build/npm/node_modules/onnxruntime-web/dist
VENDOR       := _vendor/vendor
VENDOR_STAMP := $(VENDOR)/.installed

venv: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir -c requirements-lock.txt -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

vendor: $(VENDOR_STAMP)

$(VENDOR_STAMP): Makefile
	rm -rf $(VENDOR) _build/npm && mkdir -p $(VENDOR) _build/npm
	npm install --prefix _build/npm --no-audit --no-fund --no-save --silent $(NPM_PACKAGES)
	cp -r _build/npm/node_modules/mathjax/es5 $(VENDOR)/mathjax
	mkdir -p $(VENDOR)/onnxruntime-web
	cp $(ORT_DIST)/ort.wasm.min.js $(VENDOR)/onnxruntime-web/
	{ printf 'window.ORT_WASM_SIMD_BASE64 = "'; base64 -w0 $(ORT_DIST)/ort-wasm-simd.wasm; printf '";\n'; } \
	  > $(VENDOR)/onnxruntime-web/ort-wasm-simd.wasm.js
	rm -rf _build/npm
	touch $(VENDOR_STAMP)

# The teaching ZFNet for the page "Your own picture": exported from the shipped weights (no network), not committed.
browser-assets: $(STAMP)
	$(PY) scripts/browser_assets.py

book: $(STAMP) $(VENDOR_STAMP) browser-assets
	$(PY) scripts/book_cache.py
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# The same site rendered from the chapters' stored outputs, without executing them: what `make test` opens in
# the browser. By then nbval has run every chapter against those outputs on three CPU paths, so a fourth
# execution (about 8 minutes on 2 cores) would check nothing new. `make book` executes, as a reader's build does.
SITE_CONFIG := _build/config-stored-outputs.yml
site: $(STAMP) $(VENDOR_STAMP) browser-assets
	mkdir -p _build
	sed 's/^\(  execute_notebooks:\).*/\1 "off"/' _config.yml > $(SITE_CONFIG)
	grep -q '^  execute_notebooks: "off"$$' $(SITE_CONFIG)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --config $(SITE_CONFIG)

test: disk nbval classroom-tests cpu-paths browser
	@$(MAKE) --no-print-directory disk

# CI machines differ in free disk (the venv alone is about 6.5 GB): say what is left, before and after, so that
# a run that fills the disk is seen as such. Tests keep only a failing test's tmp_path (pyproject.toml) and
# each pass of cpu-paths removes its folder when it passes.
disk:
	@df -h . /tmp | sed 's/^/disk: /'

# The Colab/Jupyter edition: the chapters' MyST rendered for Jupyter and Colab, outputs and glued numbers in
# (scripts/notebooks.py) -> _build/notebooks/book/*.ipynb. scripts/publish_notebooks.sh puts it on the
# `notebooks` branch that the launch buttons open.
notebooks: $(STAMP)
	$(PY) scripts/notebooks.py

# The classroom edition: per chapter a student notebook (solutions removed, public checks) and an Otter
# autograder (hidden tests) -> _build/classroom/; the teacher's page is _build/classroom/README.md.
classroom: $(STAMP)
	$(PY) scripts/classroom.py build

UNIT  := -m pytest tests --ignore=tests/browser -p no:cacheprovider
NBVAL := -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider book

# What a developer runs: everything on this CPU, the chapters' 2 threads.
unit: $(STAMP)
	$(PY) $(UNIT)

nbval: $(STAMP)
	$(PY) $(NBVAL)

# Other CPUs add floats in another order (other vector widths, other oneDNN/MKL kernels, other thread counts),
# so a test or a stored output that holds only on this CPU would fail there. `make test` runs nbval natively on
# the chapters' 2 threads (above), then the unit tests and nbval again the way other machines would, on 1 thread:
# natively, under PyTorch's AVX2 kernels (the common x86-64 without AVX-512), and under its plain C++ kernels
# with SSE4.1 oneDNN (the chapters and tests/conftest.py read ZFVIZ_THREADS, default 2).
# scripts/cpu_paths.py first shows that each switch really changes a float sum on this machine.
# The 1-thread passes are independent, so they run two at a time (one core each), longest first, each in its
# own pytest folder; --output-sync prints each one's output whole once it has finished. Measured on 2 cores:
# plain nbval 12.5 min, AVX2 nbval 8.5, plain unit 6, AVX2 unit 4.5, native unit 4: about 18.5 minutes for
# the five, where the native unit tests on 2 threads followed by an AVX2 and a plain pass side by side took
# 36.5 (classroom tests included).
CPU_NATIVE := OMP_NUM_THREADS=1 ZFVIZ_THREADS=1
CPU_AVX2   := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 $(CPU_NATIVE)
CPU_PLAIN  := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2 $(CPU_NATIVE)
CPU_PASSES := cpu-plain-nbval cpu-avx2-nbval cpu-plain-unit cpu-avx2-unit cpu-native-unit
.PHONY: $(CPU_PASSES) classroom-tests

# The classroom tests execute the chapters once more (student notebooks, graded, and `otter run`); the native
# path is enough there, since the checks they grade with are cells of the chapters, which nbval runs on all
# three paths. They run alone, on the chapters' 2 threads (about 8 minutes): run beside the other passes, one
# clean-clone run saw `otter run` wait on an idle kernel for over 20 minutes (the cause is not established;
# kernels started at the same moment by two processes can race for ports), and sequentially they never have.
classroom-tests: $(STAMP)
	rm -rf _build/pytest-classroom && mkdir -p _build/pytest-classroom
	$(PY) $(UNIT) -q -m classroom --basetemp=_build/pytest-classroom/run
	rm -rf _build/pytest-classroom

cpu-paths: $(STAMP)
	$(PY) scripts/cpu_paths.py "$(CPU_AVX2)" "$(CPU_PLAIN)"
	$(MAKE) --no-print-directory -j2 --output-sync=target $(CPU_PASSES)

# One pass: pytest with the arguments $(3) under the environment $(1), in its own folder _build/pytest-$(2).
define cpu_pass
rm -rf _build/pytest-$(2) && mkdir -p _build/pytest-$(2)
env $(1) $(PY) $(3) -q --basetemp=_build/pytest-$(2)/run
rm -rf _build/pytest-$(2)
endef

cpu-native-unit: $(STAMP)
	$(call cpu_pass,$(CPU_NATIVE),native-unit,$(UNIT) -m "not classroom")

cpu-avx2-unit: $(STAMP)
	$(call cpu_pass,$(CPU_AVX2),avx2-unit,$(UNIT) -m "not classroom")

cpu-avx2-nbval: $(STAMP)
	$(call cpu_pass,$(CPU_AVX2),avx2-nbval,$(NBVAL))

cpu-plain-unit: $(STAMP)
	$(call cpu_pass,$(CPU_PLAIN),plain-unit,$(UNIT) -m "not classroom")

cpu-plain-nbval: $(STAMP)
	$(call cpu_pass,$(CPU_PLAIN),plain-nbval,$(NBVAL))

# The built site in a real browser (tests/browser): builds it (from the stored outputs: `site`), then opens every
# page offline.
browser: site
	command -v chromedriver >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }
	$(PY) -m pytest tests/browser

# Rebuild data/ from the Debian packages (needs apt-get; see scripts/build_data.py).
data: $(STAMP)
	$(PY) scripts/build_data.py

lock:
	{ echo '# Exact versions used by `make book` / `make test` (pip -c). Regenerate with `make lock`.'; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^zfviz'; } > requirements-lock.txt

clean:
	rm -rf _build
