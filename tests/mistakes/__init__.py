"""Plausible wrong answers per assignment: ``tests/mistakes/<assignment>.py`` defines ``MISTAKES``."""
