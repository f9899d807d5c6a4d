"""The fused Triton layers (impl "triton") equal the single-model layers run by run: values, input gradients, weight
and bias gradients, with and without the fused ReLU. Without CUDA the kernels run in Triton's interpreter (float64
here, so the comparison is tight); skipped where triton is not installed."""
import os

import pytest
import torch
from torch.nn import functional as F

# without CUDA, conftest.py has set TRITON_INTERPRET=1 before anything imported triton
T = pytest.importorskip("training.kernels.triton_layers", exc_type=ImportError)

from training.kernels import packed_layers as L  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPE = torch.float32 if DEVICE == "cuda" else torch.float64
K, N = 2, 3


@pytest.fixture(autouse=True)
def _no_tf32_reference():
    """On CUDA the reference convolutions run in true fp32 (cuDNN would use TF32 by default)."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = saved


def _reference(kind, x, weight, bias, relu):
    """Each run's ``F.conv2d`` / ``F.conv_transpose2d`` on channels-last x (K, N, H, W, C)."""
    outs = []
    for r in range(x.shape[0]):
        v = x[r].permute(0, 3, 1, 2)
        if kind == "conv4x4_s2":
            y = F.conv2d(v, weight[r], bias[r], 2, 1)
        elif kind == "conv2x2_s2":
            y = F.conv2d(v, weight[r], bias[r], 2, 0)
        else:
            y = F.conv_transpose2d(v, weight[r], bias[r], 2, 1)
        outs.append((torch.relu(y) if relu else y).permute(0, 2, 3, 1))
    return torch.stack(outs)


def _weights(kind, c, o, generator):
    weight = 0.3 * torch.randn((K,) + L.weight_shape(kind, c, o), generator=generator, dtype=DTYPE)
    return weight, 0.1 * torch.randn((K, o), generator=generator, dtype=DTYPE)


CASES = [("conv4x4_s2", 1, 32, 8), ("conv4x4_s2", 3, 5, 6), ("conv4x4_s2", 32, 32, 4), ("conv2x2_s2", 32, 64, 4),
         ("conv2x2_s2", 3, 17, 6), ("conv_transpose4x4_s2", 64, 32, 2), ("conv_transpose4x4_s2", 32, 1, 3),
         ("conv_transpose4x4_s2", 5, 3, 4)]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("kind, c, o, size", CASES)
def test_fused_layer_equals_the_convolutions(kind, c, o, size, relu):
    g = torch.Generator().manual_seed(c * 100 + o + size)
    x = torch.randn((K, N, size, size, c), generator=g, dtype=DTYPE)
    weight, bias = _weights(kind, c, o, g)
    xr, wr, br = (t.clone().to(DEVICE).requires_grad_(True) for t in (x, weight, bias))
    reference = _reference(kind, xr, wr, br, relu)
    form = L.TRITON_FORMS[kind]
    xt, bt = x.clone().to(DEVICE).requires_grad_(True), bias.clone().to(DEVICE).requires_grad_(True)
    matrix = L.gemm_matrix(kind, weight, form).to(DEVICE).requires_grad_(True)   # not always contiguous (c = 1)
    out = T.packed_conv(xt, matrix, bt, kind, relu=relu)
    tol = dict(rtol=0, atol=1e-10) if DTYPE == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out, reference, **tol)
    grad = torch.randn(reference.shape, generator=g, dtype=DTYPE).to(DEVICE)
    (out * grad).sum().backward()
    (reference * grad).sum().backward()
    torch.testing.assert_close(xt.grad, xr.grad, **tol)
    torch.testing.assert_close(L.gemm_weight(kind, matrix.grad, tuple(weight.shape), form), wr.grad, **tol)
    torch.testing.assert_close(bt.grad, br.grad, **tol)


@pytest.mark.parametrize("kind", T.KINDS)
def test_weight_gradient_is_the_same_for_any_row_split_and_block(kind):
    g = torch.Generator().manual_seed(5)
    c, o, size = 4, 6, 8
    x = torch.randn((K, N, size, size, c), generator=g, dtype=DTYPE).to(DEVICE)
    out_size = T.out_size(kind, size)
    grad = torch.randn((K, N, out_size, out_size, o), generator=g, dtype=DTYPE).to(DEVICE)
    mask = torch.randn(grad.shape, generator=g, dtype=DTYPE).to(DEVICE)
    geometry = T.FORWARD[kind]
    dw, db = T.gather_gemm_wgrad(x, grad, geometry, mask=mask, split=1, block_m=16)
    for split, block in ((3, 16), (None, 64), (None, None)):
        dw2, db2 = T.gather_gemm_wgrad(x, grad, geometry, mask=mask, split=split, block_m=block)
        torch.testing.assert_close(dw2, dw)
        torch.testing.assert_close(db2, db)
    # the mask zeroes the gradient where it is <= 0: the same as multiplying by the indicator first
    dw3, db3 = T.gather_gemm_wgrad(x, grad * (mask > 0), geometry, split=2, block_m=32)
    torch.testing.assert_close(dw3, dw)
    torch.testing.assert_close(db3, db)


@pytest.mark.parametrize("kind", T.KINDS)
def test_any_reduction_tile_gives_the_same_values(kind):
    """block_r: one tap's channels in halves (16), a whole tap (32), tiles spanning two or four taps (64, 128, the
    "flat" addressing), all of R in one tile with 16 rows per program (512: each weight-gradient program reads its
    gradient rows once) -> the same forward pass, input gradient and weight gradient."""
    g = torch.Generator().manual_seed(6)
    c, o, size = 32, 16, 8
    x = torch.randn((K, N, size, size, c), generator=g, dtype=DTYPE).to(DEVICE)
    weight, bias = _weights(kind, c, o, g)
    matrix = T.forward_matrix(kind, L.gemm_matrix(kind, weight, L.TRITON_FORMS[kind]).to(DEVICE))
    out_hw = (T.out_size(kind, size),) * 2
    grad = torch.randn((K, N) + out_hw + (o,), generator=g, dtype=DTYPE).to(DEVICE)
    mask = torch.randn(grad.shape, generator=g, dtype=DTYPE).to(DEVICE)   # a ReLU mask is shaped like the gradient
    dmatrix = T.dgrad_matrix(kind, L.gemm_matrix(kind, weight, L.TRITON_FORMS[kind]).to(DEVICE), c)
    want = (T.gather_gemm(x, matrix, bias.to(DEVICE), T.FORWARD[kind], out_hw, relu=True),
            T.gather_gemm(grad, dmatrix, None, T.DGRAD[kind], (size, size), mask=mask),
            *T.gather_gemm_wgrad(x, grad, T.FORWARD[kind], mask=mask))
    for block_r, block_m in ((16, None), (32, None), (64, None), (128, None), (512, 16)):
        tiles = {"block_r": block_r, "block_m": block_m}
        got = (T.gather_gemm(x, matrix, bias.to(DEVICE), T.FORWARD[kind], out_hw, relu=True, **tiles),
               T.gather_gemm(grad, dmatrix, None, T.DGRAD[kind], (size, size), mask=mask, **tiles),
               *T.gather_gemm_wgrad(x, grad, T.FORWARD[kind], mask=mask, **tiles))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="block_r"):
        T.gather_gemm_wgrad(x, grad, T.FORWARD[kind], block_r=48)


def test_installed_launch_configurations_reach_the_kernels_and_keep_the_values(monkeypatch):
    """A measured launch table (triton_tune.py's "best") changes how a layer's passes are launched, not what they
    compute; bad rows are refused."""
    monkeypatch.setattr(T, "LAUNCH_CONFIGS", {})
    kind, c, o, size = "conv4x4_s2", 32, 16, 8
    assert T.launch_config(kind, c, o, size, "wgrad") == {"block_m": None, "num_warps": T.NUM_WARPS,
                                                          "num_stages": None, "block_r": None}
    g = torch.Generator().manual_seed(9)
    x = torch.randn((K, N, size, size, c), generator=g, dtype=DTYPE).to(DEVICE)
    weight, bias = _weights(kind, c, o, g)
    matrix = L.gemm_matrix(kind, weight, L.TRITON_FORMS[kind]).to(DEVICE)
    grad = torch.randn((K, N, 4, 4, o), generator=g, dtype=DTYPE).to(DEVICE)

    def run():
        xt, mt, bt = (t.clone().requires_grad_(True) for t in (x, matrix, bias.to(DEVICE)))
        out = T.packed_conv(xt, mt, bt, kind, relu=True)
        (out * grad).sum().backward()
        return out, xt.grad, mt.grad, bt.grad

    before = run()
    rows = [{"kind": kind, "c": c, "o": o, "height": size, "pass": name, "block_m": 16, "num_warps": 4,
             "num_stages": 2, "block_r": 64} for name in ("forward", "dgrad", "wgrad")]
    assert T.set_launch_configs(rows) == 3
    assert T.launch_config(kind, c, o, size, "dgrad") == {"block_m": 16, "num_warps": 4, "num_stages": 2,
                                                          "block_r": 64}
    seen = []
    real = T.gather_gemm_wgrad
    monkeypatch.setattr(T, "gather_gemm_wgrad",
                        lambda *a, **kw: seen.append((kw["block_m"], kw["block_r"])) or real(*a, **kw))
    for got, want in zip(run(), before):
        torch.testing.assert_close(got, want)
    assert seen == [(16, 64)]
    with pytest.raises(ValueError, match="launch configuration"):
        T.set_launch_configs([dict(rows[0], **{"pass": "sideways"})])


def test_bad_shapes_and_kinds_raise():
    x = torch.zeros((1, 1, 8, 8, 2), dtype=DTYPE, device=DEVICE)
    with pytest.raises(ValueError, match="do not fit"):
        T.gather_gemm(x, torch.zeros((1, 1, 16, 4), dtype=DTYPE, device=DEVICE), None, T.FORWARD["conv4x4_s2"],
                      (4, 4))
    with pytest.raises(ValueError, match="kind"):
        T.packed_conv(x, torch.zeros((1, 32, 4), dtype=DTYPE, device=DEVICE), torch.zeros((1, 4), dtype=DTYPE,
                                                                                          device=DEVICE), "conv3x3")


@pytest.mark.parametrize("kind, relu", [("conv4x4_s2", True), ("conv_transpose4x4_s2", False)])
def test_the_layer_is_a_well_formed_custom_operator(kind, relu):
    """torch.library.opcheck: schema, fake (shape-only) implementations, autograd registration and the traced
    (AOT) forward and backward agree with eager, as torch.compile will use them."""
    g = torch.Generator().manual_seed(2)
    c, o, size = 3, 5, 4
    x = torch.randn((K, N, size, size, c), generator=g, dtype=DTYPE).to(DEVICE).requires_grad_(True)
    weight, bias = _weights(kind, c, o, g)
    matrix = L.gemm_matrix(kind, weight, L.TRITON_FORMS[kind]).contiguous().to(DEVICE).requires_grad_(True)
    torch.library.opcheck(torch.ops.dstudy.triton_packed_conv.default,
                          (x, matrix, bias.to(DEVICE).requires_grad_(True), kind, relu, "fp32"))


@pytest.mark.parametrize("o, relu", [(1, False), (3, True)])
def test_col2im_output_layer_equals_the_four_phase_kernels(o, relu, monkeypatch):
    """A transposed convolution to few channels (O <= COL2IM_MAX_O) takes the col2im path (a pointwise GEMM to
    16 * O columns, then a fixed 0/1 gather); values and all gradients equal the four-phase kernels'; the custom
    operator is well formed."""
    kind, c, size = "conv_transpose4x4_s2", 8, 4
    assert o <= T.COL2IM_MAX_O
    g = torch.Generator().manual_seed(o)
    x = torch.randn((K, N, size, size, c), generator=g, dtype=DTYPE).to(DEVICE)
    weight, bias = _weights(kind, c, o, g)
    matrix = L.gemm_matrix(kind, weight, L.TRITON_FORMS[kind]).contiguous().to(DEVICE)
    grad = torch.randn((K, N, 2 * size, 2 * size, o), generator=g, dtype=DTYPE).to(DEVICE)
    calls = []
    op = T._col2im_op
    monkeypatch.setattr(T, "_col2im_op", lambda *a: calls.append(1) or op(*a))
    results = []
    for layer in (lambda *a: T.packed_conv(*a, kind, relu=relu), lambda *a: T._conv_op(*a, kind, relu, "fp32")):
        xt, mt, bt = (t.clone().requires_grad_(True) for t in (x, matrix, bias.to(DEVICE)))
        out = layer(xt, mt, bt)
        (out * grad).sum().backward()
        results.append((out, xt.grad, mt.grad, bt.grad))
    assert calls == [1]   # packed_conv took the col2im path, _conv_op the four phases
    for got, want in zip(*results):
        torch.testing.assert_close(got, want)
    w_all = weight.permute(0, 1, 3, 4, 2).reshape(K, 1, c, 16 * o).to(DEVICE).requires_grad_(True)
    torch.library.opcheck(torch.ops.dstudy.triton_col2im_conv.default,
                          (x.clone().requires_grad_(True), w_all, bias.to(DEVICE).requires_grad_(True), relu, "fp32"))


def test_impl_triton_without_cuda_or_interpreter_is_refused(monkeypatch):
    from training.engine.packed import _check_triton

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="runs on CUDA"):
        _check_triton(torch.device("cpu"))


def test_measured_tables_name_layers_of_the_architecture():
    """Every entry of every tuning file (training/kernels/tuning/*.json) is a (kind, C, O, input height) of the shared
    architecture (1 or 3 channels), so none is silently never used; the passes and configurations are well formed."""
    from training.models.architecture import GaussianVAE
    from training.engine.packed import _CONVOLUTIONS

    layers = set()
    for channels in (1, 3):
        vae = GaussianVAE(channels, 10)
        for name, kind, height in _CONVOLUTIONS:
            module = vae.get_submodule(name)
            layers.add((kind, module.in_channels, module.out_channels, height))
    files = sorted(T.TUNING_DIR.glob("*.json"))
    assert files
    for path in files:
        configs, gemm_layers = T.load_tuning(path)
        assert gemm_layers <= layers and {key[:4] for key in configs} <= layers
        for (kind, c, o, height, pass_name), (block_m, warps, stages, block_r) in configs.items():
            assert pass_name in ("forward", "dgrad", "wgrad") and block_m in (32, 64, 128) and warps in (4, 8)
    # installed on a GPU only: the interpreter runs every layer fused, with its own tiles
    installed = os.environ.get("TRITON_INTERPRET") != "1"
    h200_gemm = T.load_tuning(T.TUNING_DIR / "h200.json")[1]
    assert (h200_gemm <= T.GEMM_LAYERS) == installed
