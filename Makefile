# trustbuild: `make demo` and `make test` do all the set-up on a fresh Debian 12 machine (as root).
.PHONY: setup test test-fast demo lint bench clean executor

setup:
	bash .ci/setup.sh

# pytest exits 5 when it collects no test: that is a failure here, never hidden.
# The linters run first: a style or typing error fails the test run as CI sees it.
test: setup
	.venv/bin/python -m ruff check trustbuild tests
	.venv/bin/python -m mypy trustbuild
	.venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

demo: setup
	bash examples/demo.sh

lint: setup
	.venv/bin/python -m ruff check trustbuild tests
	.venv/bin/python -m mypy trustbuild

bench: setup
	.venv/bin/python bench/run.py

# The executor image, built by trustbuild from a debootstrapped Debian base (docs/executor.md).
# EXECUTOR_DEST=REF pushes it (default: an OCI layout in .cache/executor/executor-layout);
# EXECUTOR_SIGN_KEY=KEY signs it and attaches provenance and an SBOM.
EXECUTOR_CACHE ?= .cache/executor
executor: setup
	.venv/bin/python executor/build.py --cache-dir $(EXECUTOR_CACHE) \
	  $(if $(EXECUTOR_DEST),--destination $(EXECUTOR_DEST)) \
	  $(if $(EXECUTOR_SIGN_KEY),--sign-key $(EXECUTOR_SIGN_KEY)) \
	  $(if $(EXECUTOR_POLICY),--policy $(EXECUTOR_POLICY))

clean:
	rm -rf .venv build dist *.egg-info .demo
