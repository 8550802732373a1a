"""Test support that is not a test: servers and helpers shared by tests and benchmarks."""
