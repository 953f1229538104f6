# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both install what they need first: the Debian peers (scripts/install-peers.sh) and a
# virtual environment in .venv with airgap and its test tools.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup peers venv lint test demo bench wheelhouse clean

setup: peers venv

peers:
	./scripts/install-peers.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "airgap needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

lint: venv
	@! git grep -nE '^(<<<<<<< |>>>>>>> )' -- . || { echo "merge-conflict markers left"; exit 1; }
	$(BIN)/ruff check airgap tests scripts $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python scripts/demo.py $(if $(WITH_TOOL),--with-tool $(WITH_TOOL))

# airgap and its dependencies as wheels for CPython 3.11-3.13 on linux x86_64 and aarch64,
# with install.sh: dist/airgap-<version>-wheelhouse/ (needs PyPI; `fetch --with-tool`).
wheelhouse: venv
	$(BIN)/python scripts/wheelhouse.py

bench: setup
	for script in image_fetch artifacts verify load tailored split_join delta; do \
		$(BIN)/python bench/$$script.py || exit 1; done

clean:
	rm -rf $(VENV) .demo dist build .pytest_cache .mypy_cache .ruff_cache *.egg-info
