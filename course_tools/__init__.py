"""Instructor tooling: build the release, run notebooks headless, benchmark, grade."""
