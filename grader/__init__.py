"""The course's grading tools (`python -m grader --help`): release, validate, check, autograde, export.

Never imports nnlab: it grades notebooks, whatever they import.
"""
