# vtryon: `make demo` (set up and run the example), `make test` (the whole suite), `make bench`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out

# torch: 2.13.0 is a CPU build; torchvision (neural backends, tests) pairs with 2.14.1.
TORCH_DEMO := torch==2.13.0
TORCH_FULL := torch==2.14.1 torchvision==0.29.1

DEMO_PERSON  := examples/person_grace_hopper.jpg
DEMO_GARMENT := examples/garment_tshirt_black_openclipart.png

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_DEMO)
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_FULL)
	$(BIN)/python -m pip install --quiet -e ".[neural,diffusion,ray,onnx,test]"
	touch $@ $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/vtryon run $(DEMO_PERSON) $(DEMO_GARMENT) --profile embedded -o $(OUT)/demo.png --save-steps $(OUT)/demo_steps
	@echo "result:        $(OUT)/demo.png"
	@echo "step pictures: $(OUT)/demo_steps/ (contact sheet: $(OUT)/demo_steps/contact_sheet.png)"

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(VENV)/.installed-demo
	$(BIN)/vtryon bench examples ../shared/images --profile embedded --pairs 20 --out $(OUT)/bench

clean:
	rm -rf $(OUT) .pytest_cache
