# trustbuild: `make demo` and `make test` do all the set-up on a fresh Debian 12 machine (as root).
.PHONY: setup test test-fast demo lint bench clean

setup:
	bash .ci/setup.sh

# pytest exits 5 when it collects no test: that is a failure here, never hidden.
test: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

demo: setup
	bash examples/demo.sh

lint: setup
	.venv/bin/python -m ruff check trustbuild tests || true

bench: setup
	.venv/bin/python bench/run.py

clean:
	rm -rf .venv build dist *.egg-info .demo
