"""Benchmarks, run by hand (see README.md); not collected by the default test run."""
