# notes-assistant — two entry points: `make run` and `make test`.
# Both create .venv on first use and install the project into it (editable).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: run test index bench bench-load eval clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch is pinned to the CPU build on the machines' disk (see pyproject.toml).
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python app.py

test: $(STAMP)
	$(VENV)/bin/python -m pytest

index: $(STAMP)
	$(VENV)/bin/notes-assistant index

bench: $(STAMP)
	$(VENV)/bin/python bench/index_and_search.py
	$(VENV)/bin/python bench/ask_latency.py

bench-load: $(STAMP)
	$(VENV)/bin/python bench/load_test.py

eval: $(STAMP)
	$(VENV)/bin/notes-assistant eval

clean:
	rm -rf $(VENV) .notes-index .pytest_cache
