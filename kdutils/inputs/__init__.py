"""Data and models: datasets as uint8 tensors with on-device batches, the model registry, recipes
(optimizer, schedule, augmentation) and the runtime's device and memory-format decisions.

A layer of kdutils (tests/test_layers.py): its modules import only from this layer and the ones below.
"""
