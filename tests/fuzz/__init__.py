"""Property-based fuzzing: schemathesis over the four apps' OpenAPI, hypothesis over the rules and the coercion.

A package, so that its conftest.py does not take the place of tests/conftest.py as the module `conftest`.
"""
