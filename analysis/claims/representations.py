"""Claims C2 and C3 (Section 5.1, Fig. 1): what the methods do to the total correlation of the sampled and of the
mean representation."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from analysis.claims.controls import STRENGTH_VISIBLE, trend_with_null
from analysis.claims.engine import Claim, Context, Test, nanmean, need

DIP_VAES = ("dip_vae_i", "dip_vae_ii")


def below_probability(a: np.ndarray, b: np.ndarray) -> float:
    """P(a random value of ``a`` < a random value of ``b``), ties counted half (the Mann-Whitney statistic over
    len(a) x len(b)); NaN entries dropped, NaN when either side is empty."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([a, b]))
    return float((ranks[a.size:].sum() - b.size * (b.size + 1) / 2) / (a.size * b.size))


def measure_c2(ctx: Context) -> dict[str, float]:
    """``sampled_tc_trend``: mean Spearman(strength, sampled TC) over the (dataset, beta-VAE / beta-TCVAE) groups;
    ``dip_below_vae``: P(a DIP-VAE's sampled TC < a vanilla VAE's) within a dataset, averaged over datasets (NaN
    when the store has no DIP-VAE or no vanilla VAE: beta = 1 of beta-VAE or beta-TCVAE)."""
    need("tc_sampled" in ctx.present,
         "no total correlation of the sampled representation (evaluation 'unsupervised' on 'sampled')")
    need(ctx.in_methods(("beta_vae", "beta_tc_vae")).any(), "no beta-VAE or beta-TCVAE runs")
    trend = trend_with_null(ctx, "tc_sampled", ("beta_vae", "beta_tc_vae"), "sampled_tc_trend")
    tc = ctx.values("tc_sampled")
    vanilla = ctx.in_methods(("beta_vae", "beta_tc_vae"))[:, None] & (ctx.cube.hparams == 1.0)     # (G, H)
    below = []
    for dataset in ctx.datasets:
        here = ctx.in_dataset(dataset)
        dip = tc[here & ctx.in_methods(DIP_VAES)].ravel()
        vae = tc[here[:, None] & vanilla].ravel()
        below.append(below_probability(dip, vae))
    return {**trend, "dip_below_vae": nanmean(below)}


def measure_c3(ctx: Context) -> dict[str, float]:
    """``mean_tc_trend``: mean Spearman(strength, mean-representation TC) over the (dataset, beta-VAE / beta-TCVAE /
    FactorVAE) groups; ``mean_above_sampled`` (reported): share of models whose mean TC exceeds their sampled TC."""
    need("tc_mean" in ctx.present,
         "no total correlation of the mean representation (evaluation 'unsupervised' on 'mean')")
    need(ctx.in_methods(("beta_vae", "beta_tc_vae", "factor_vae")).any(), "no beta-VAE, beta-TCVAE or FactorVAE runs")
    trend = trend_with_null(ctx, "tc_mean", ("beta_vae", "beta_tc_vae", "factor_vae"), "mean_tc_trend")
    mean, sampled = ctx.values("tc_mean"), ctx.values("tc_sampled") if "tc_sampled" in ctx.col else None
    share = float("nan")
    if sampled is not None:
        both = ~np.isnan(mean) & ~np.isnan(sampled)
        share = float((mean[both] > sampled[both]).mean()) if both.any() else float("nan")
    return {**trend, "mean_above_sampled": share}


C2 = Claim(
    "C2",
    "sampled_tc_trend < 0: the mean Spearman correlation between regularisation strength and the sampled "
    "representation's total correlation, over every beta-VAE and beta-TCVAE model of each dataset, is negative; and "
    "dip_below_vae > 0.5: a DIP-VAE model's sampled TC is more likely below a vanilla VAE's (beta = 1) than above",
    measure_c2,
    (Test("sampled_tc_trend", "<", 0.0, "sampled TC falls with strength", permutation=True),
     Test("dip_below_vae", ">", 0.5, "the DIP-VAEs' sampled TC is below the vanilla VAE's")),
    STRENGTH_VISIBLE)

C3 = Claim(
    "C3",
    "mean_tc_trend > 0: the mean Spearman correlation between regularisation strength and the mean representation's "
    "total correlation, over every beta-VAE, beta-TCVAE and FactorVAE model of each dataset, is positive; also "
    "reported: the share of models whose mean TC exceeds their sampled TC",
    measure_c3,
    (Test("mean_tc_trend", ">", 0.0, "mean TC rises with strength", permutation=True),),
    STRENGTH_VISIBLE, percent=("mean_above_sampled",))
