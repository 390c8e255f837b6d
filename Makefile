# Thin wrappers over dev.py, which creates .venv and installs on first use.
PY ?= python3
BENCHES := quality serve cost ingest greetings profiles fuzz abuse faults

.PHONY: demo test lint spec bench $(addprefix bench-,$(BENCHES))
demo:
	$(PY) dev.py demo
test:
	$(PY) dev.py test
lint:
	$(PY) dev.py lint
spec:
	$(PY) dev.py spec
# every benchmark, one after the other (about half an hour on a 2-core machine)
bench: $(addprefix bench-,$(BENCHES))
$(addprefix bench-,$(BENCHES)):
	$(PY) dev.py $@
