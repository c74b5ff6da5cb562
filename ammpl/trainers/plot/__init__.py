"""PLOT and PLOT++: prompt learning with optimal transport (Chen et al., ICLR 2023).

`ot` is the batched Sinkhorn head both share; `plot` is the reference's RN50 method
(plot-coop, also on ViT final tokens), `plotpp` the authors' two-stage ViT-B/16 variant.
Importing the package registers both trainers and their config nodes.
"""

from ammpl.trainers.plot import plot, plotpp  # noqa: F401
