"""Bridges to other code bases that run prompt-learning trainers.

`ammpl.integrations.dassl`: registers ammpl's CLIP trainers (AMMPL first) into the original
Dassl engine, so that a CoOp fork's own `train.py` can train them. Importing this package
never imports Dassl.
"""
