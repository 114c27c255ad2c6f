"""The activation core: the table of facts, the float64 reference and the fast ops.

:mod:`.spec` (one frozen row per activation), :mod:`.reference` (NumPy float64, the
oracle), :mod:`.functional` (the ops and their memory-light backward),
:mod:`.batch_norm_leaky_relu` (the fused BatchNorm + Leaky ReLU op), :mod:`.init`
(initialisation with the activation's own gain), :mod:`.kernels` (Triton on CUDA) and
:mod:`.checks` (argument checks). It imports nothing of leaky's above it.
"""
