"""Grading a class: check, sandbox, execute, score, record, report. One job per module."""
