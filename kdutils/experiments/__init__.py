"""Runs of one dataset (Experiment), groups of runs on executors, the cost plan, teacher -> student
pairs, notebook 04's sizes and the notebooks' parameter rules.

A layer of kdutils (tests/test_layers.py): its modules import only from this layer and the ones below.
"""
