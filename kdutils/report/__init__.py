"""Results tables and claim statistics, the named claim rules, the figures, and the notebook
context.

A layer of kdutils (tests/test_layers.py): its modules import only from this layer and the ones below.
"""
