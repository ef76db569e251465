"""Shared pytest set-up: tests import ``tests.*`` helpers from the repo root."""
