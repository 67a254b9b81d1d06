# The Python stub example (clients/python): a venv from PyPI in build/venv,
# stubs generated from proto/ into build/python-gen (never committed), and a
# pytest run against the real server binary. Stamps keep a second run quick.

PY_DIR := $(ROOT)/clients/python
PY_VENV := $(BUILD)/venv
PY_GEN := $(BUILD)/python-gen
PY_PROTOS := $(wildcard $(ROOT)/proto/parley/v1/*.proto)

.PHONY: test-clients python-stubs
python-stubs: $(PY_GEN)/.stamp

# --clear rebuilds the venv from scratch when the pins change, so nothing
# from an older requirements.txt lingers.
$(PY_VENV)/.stamp: $(PY_DIR)/requirements.txt
	python3 -m venv --clear $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

$(PY_GEN)/.stamp: $(PY_PROTOS) $(PY_VENV)/.stamp
	rm -rf $(PY_GEN) && mkdir -p $(PY_GEN)
	$(PY_VENV)/bin/python -m grpc_tools.protoc -I $(ROOT)/proto \
	  --python_out=$(PY_GEN) --pyi_out=$(PY_GEN) --grpc_python_out=$(PY_GEN) $(PY_PROTOS)
	touch $@

# No bytecode or pytest cache is written into the source tree.
test-clients: server $(PY_GEN)/.stamp
	cd $(PY_DIR) && PARLEY_SERVER_BIN=$(SERVER_BIN) PYTHONPATH=$(PY_GEN) \
	  PYTHONDONTWRITEBYTECODE=1 $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider
