"""The AMMPL paper's tables and figures in miniature, on the mini world (`scripts/mini/paper.sh`).

The top layer: it plans sweeps (`ammpl.sweep`), runs them, and reports through
`ammpl.results` and `ammpl-viz`.
"""
