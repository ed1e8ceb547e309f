"""Oviya's eval harness: scripted runs on any directory of real audio in the eval_audio manifest format.

Run ``python -m eval TASK --data DIR --out DIR``; see ``python -m eval --help``.
"""
