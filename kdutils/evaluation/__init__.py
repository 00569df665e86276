"""The evaluation suite as a registry, faithfulness measures, and the training-row selections and
data-selection scorers. They see an experiment only through kdutils.training.store.RunData.

A layer of kdutils (tests/test_layers.py): its modules import only from this layer and the ones below.
"""
