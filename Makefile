# Thin wrappers over dev.py, which creates .venv and installs on first use.
PY ?= python3

.PHONY: demo test lint spec bench bench-quality bench-serve
demo:
	$(PY) dev.py demo
test:
	$(PY) dev.py test
lint:
	$(PY) dev.py lint
spec:
	$(PY) dev.py spec
bench: bench-quality bench-serve
bench-quality:
	$(PY) dev.py bench-quality
bench-serve:
	$(PY) dev.py bench-serve
