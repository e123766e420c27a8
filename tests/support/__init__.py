"""Helpers shared by the test suites: API Gateway events, function loading, model bytes."""
