"""Serving keyclass models: TF Serving deployment files, clients and in-process prediction."""
