"""Encoders (backbones), their injectable normalisation layers, and MLP heads."""
