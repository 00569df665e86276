"""Pure tensor functions the methods and the evaluations share: the losses, correlation terms,
interval bounds, attacks and metrics.

A layer of kdutils (tests/test_layers.py): its modules import only from this layer and the ones below.
"""
