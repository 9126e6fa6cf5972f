# Two commands on a fresh machine:
#   make book   -> .venv with the locked dependencies, executes the chapters, writes _build/html
#   make test   -> the same set-up, then the package's unit tests and nbval (strict) over book/
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book test unit nbval venv lock clean data train

venv: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements-lock.txt -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test: unit nbval

unit: $(STAMP)
	$(PY) -m pytest tests

nbval: $(STAMP)
	$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider book

# Rebuild data/ from the Debian packages (needs apt-get; see scripts/build_data.py).
data: $(STAMP)
	$(PY) scripts/build_data.py

lock:
	{ echo '# Exact versions used by `make book` / `make test` (pip -c). Regenerate with `make lock`.'; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^zfviz'; } > requirements-lock.txt

clean:
	rm -rf _build
