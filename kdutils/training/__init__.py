"""The one training loop (fit), the run store and the settings (profiles) every layer above reads.

A layer of kdutils (tests/test_layers.py): its modules import only from this layer and the ones below.
"""
