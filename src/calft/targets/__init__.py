"""Targets: the 30 families, the prompt sets, discretization into canonical strings, their tokenization
and the token tries."""
