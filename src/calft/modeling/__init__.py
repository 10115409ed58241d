"""Modeling: chat formatting, the one model loader, and model preparation."""
