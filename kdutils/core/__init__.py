"""The ground floor: errors, project paths and atomic file I/O, registries, the batch's event
stream, run-key rules. Imports nothing else of kdutils.

A layer of kdutils (tests/test_layers.py): its modules import only from this layer and the ones below.
"""
