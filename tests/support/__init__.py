"""The test suite's helpers, one module per concern. Fixtures are not here: they live in the
conftest.py files (tests/conftest.py, tests/browser/conftest.py), which use these modules."""
