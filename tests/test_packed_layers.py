"""The packed layers equal the single-model layers run by run, in values and in gradients (float64)."""
import pytest
import torch
from torch.nn import functional as F

from training.kernels import packed_layers as L

K, N = 3, 2


def _per_run(fn, x, *params):
    """Apply the single-model NCHW layer ``fn`` to each run of channels-last x (K, N, H, W, C)."""
    return torch.stack([fn(x[r].permute(0, 3, 1, 2), *(p[r] for p in params)).permute(0, 2, 3, 1)
                        for r in range(x.shape[0])])


def _check(packed, reference, inputs):
    torch.testing.assert_close(packed, reference, rtol=0, atol=1e-12)
    grad = torch.randn_like(reference)
    for a, b in zip(torch.autograd.grad(packed, inputs, grad), torch.autograd.grad(reference, inputs, grad)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def _tensors(*shapes):
    g = torch.Generator().manual_seed(sum(sum(s) for s in shapes))
    return [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_(True) for s in shapes]


@pytest.mark.parametrize("form4, formt", [("im2col", "unfold"), ("shift", "shift")])
@pytest.mark.parametrize("size, c, o", [(8, 1, 5), (6, 3, 4), (4, 5, 2)])
def test_shifted_gemm_layers_equal_the_convolutions(size, c, o, form4, formt):
    x, w4, w2, wt, b = _tensors((K, N, size, size, c), (K, o, c, 4, 4), (K, o, c, 2, 2), (K, c, o, 4, 4), (K, o))
    # the layers take the weights as gemm matrices; gradients flow back to the weights through gemm_matrix
    m4, m2, mt = (L.gemm_matrix("conv4x4_s2", w4, form4), L.gemm_matrix("conv2x2_s2", w2, "s2d"),
                  L.gemm_matrix("conv_transpose4x4_s2", wt, formt))
    _check(L.conv4x4_s2(x, m4, b, form4), _per_run(lambda v, w_, b_: F.conv2d(v, w_, b_, 2, 1), x, w4, b),
           (x, w4, b))
    _check(L.conv2x2_s2(x, m2, b), _per_run(lambda v, w_, b_: F.conv2d(v, w_, b_, 2, 0), x, w2, b), (x, w2, b))
    _check(L.conv_transpose4x4_s2(x, mt, b, formt),
           _per_run(lambda v, w_, b_: F.conv_transpose2d(v, w_, b_, 2, 1), x, wt, b), (x, wt, b))


@pytest.mark.parametrize("kind, shape, forms", [("conv4x4_s2", (2, 5, 3, 4, 4), ("im2col", "shift")),
                                                ("conv2x2_s2", (2, 5, 3, 2, 2), ("s2d",)),
                                                ("conv_transpose4x4_s2", (2, 3, 5, 4, 4), ("unfold", "shift", "phases"))])
def test_gemm_matrix_round_trip(kind, shape, forms):
    weight = torch.randn(shape)
    for form in forms:
        assert torch.equal(L.gemm_weight(kind, L.gemm_matrix(kind, weight, form), shape, form), weight)


def test_gemm_forms_follow_the_channel_counts_and_bad_names_raise():
    assert L.gemm_form("conv4x4_s2", 1, 32) == "im2col" and L.gemm_form("conv4x4_s2", 32, 32) == "shift"
    assert L.gemm_form("conv_transpose4x4_s2", 64, 64) == "unfold"
    assert L.gemm_form("conv_transpose4x4_s2", 32, 1) == "shift"
    with pytest.raises(ValueError, match="kind"):
        L.gemm_form("conv3x3", 1, 1)
    x, m = _tensors((1, 1, 4, 4, 2), (1, 32, 4))
    with pytest.raises(ValueError, match="form"):
        L.conv4x4_s2(x, m, torch.zeros(1, 4), "unfold")


def test_grouped_layers_equal_the_convolutions():
    # the layers of the comparison baseline "grouped" (benchmarks/packed_baselines.py)
    from benchmarks.packed_baselines import grouped_conv2d, grouped_conv_transpose2d

    x, w, wt, b = _tensors((K, N, 8, 8, 2), (K, 3, 2, 4, 4), (K, 2, 3, 4, 4), (K, 3))
    grouped = x.permute(1, 0, 4, 2, 3).reshape(N, K * 2, 8, 8)        # (N, K*C, H, W)
    out = grouped_conv2d(grouped, w, b, 2, 1).view(N, K, 3, 4, 4).permute(1, 0, 3, 4, 2)
    _check(out, _per_run(lambda v, w_, b_: F.conv2d(v, w_, b_, 2, 1), x, w, b), (x, w, b))
    out = grouped_conv_transpose2d(grouped, wt, b, 2, 1).view(N, K, 3, 16, 16).permute(1, 0, 3, 4, 2)
    _check(out, _per_run(lambda v, w_, b_: F.conv_transpose2d(v, w_, b_, 2, 1), x, wt, b), (x, wt, b))


def test_shift_sum_and_interleave_on_known_values():
    # p[:, y, x, a, b] = 1000a + 100b + 10y + x: out[y, x] = sum_ab (1000a + 100b + 10(y + a) + x + b)
    y, x = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    a = torch.tensor([0.0, 1.0]).view(1, 1, 2, 1)
    b = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    p = (1000 * a + 100 * b + 10 * y[..., None, None] + x[..., None, None]).unsqueeze(0)   # (1, 3, 4, 2, 2)
    out = L.shift_sum_2x2(p)
    assert out.shape == (1, 2, 3)
    windows = L.unfold_2x2(p[..., 0, 0])                 # windows of p[:, :, :, 0, 0] = 10y + x
    assert windows.shape == (1, 2, 3, 2, 2) and windows[0, 1, 2, 1, 0] == p[0, 2, 2, 0, 0]
    torch.testing.assert_close(out[0], 2200 + 40 * y[:2, :3] + 20 + 4 * x[:2, :3] + 2)
    # phase (a, b) of output pixel (2i + a, 2j + b) is c[i + a, j + b, a, b]
    c = torch.arange(1 * 3 * 3 * 2 * 2, dtype=torch.float64).view(1, 3, 3, 2, 2)
    out = L.interleave_phases(c)
    assert out.shape == (1, 4, 4)
    for i in range(2):
        for j in range(2):
            for pa in range(2):
                for pb in range(2):
                    assert out[0, 2 * i + pa, 2 * j + pb] == c[0, i + pa, j + pb, pa, pb]


def test_padded_variants_equal_the_operations_on_a_padded_copy():
    x, p = _tensors((2, 4, 6, 3), (2, 4, 6, 2, 2, 3))
    padded = F.pad(x, (0, 0, 1, 1, 1, 1))
    _check(L.unfold_2x2(x, pad=True), L.unfold_2x2(padded), (x,))
    # shift_sum with pad: out[y + 1 - a, x + 1 - b] += p[y, x, a, b], i.e. the sum over p padded by one pixel
    _check(L.shift_sum_2x2(p, pad=True), L.shift_sum_2x2(F.pad(p, (0, 0, 0, 0, 0, 0, 1, 1, 1, 1))), (p,))
    blocks = padded.reshape(2, 3, 2, 4, 2, 3).transpose(2, 3).reshape(2, 3, 4, 12)
    _check(L.pad_space_to_depth(x), blocks, (x,))


def test_the_phase_taps_are_the_flipped_kernel_that_gemm_matrix_uses():
    # gemm_matrix reads tap PHASE_TAPS[a][u] as index 2u + a of the flipped kernel
    from training.kernels.cpu import PHASE_TAPS

    assert all(PHASE_TAPS[a][u] == 3 - (2 * u + a) for a in (0, 1) for u in (0, 1))
