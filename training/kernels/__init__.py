"""Fast paths the training engines opt into; the reference network (:mod:`training.models.architecture`) never needs
them and computes the same functions.

* :mod:`training.kernels.cpu`: fused convolution + ReLU as one oneDNN primitive and the decoder's output layer as
  one stride-1 convolution over its four output phases (CPU, eager mode).
* :mod:`training.kernels.packed_layers`: every layer of a pack of K models as one batched matrix product
  (``impl="gemm"``, the packed engine's CUDA default).
* :mod:`training.kernels.triton_layers`: the same layers as fused implicit-GEMM Triton kernels (``impl="triton"``,
  CUDA; the ``triton`` extra); their launch tables are data (``tuning/*.json``).
"""
