"""Compiling and scheduling the keyclass pipeline on Kubeflow Pipelines."""
