"""File formats: safe YAML, recipe files, INC and LPOT import, INC export, and format detection.

Reads and writes records (:mod:`sparsesearch.records`); never imports torch, and never imports or runs code
named in a file.
"""
