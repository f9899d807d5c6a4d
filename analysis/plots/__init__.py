"""Figures in the paper's style and the sentences under them, for the report's notebooks (no torch).

The package is split by role:

* :mod:`~analysis.plots.style`: display labels, method colours, the figure style (:func:`setup`) and the notebook
  display helpers (:func:`show_figure`, :func:`show_table`, :func:`note`, :func:`missing`, :func:`md`);
* :mod:`~analysis.plots.figures`: matplotlib figure builders, frames in, a ``Figure`` out (no kernel needed);
* :mod:`~analysis.plots.captions`: ``describe_*`` functions, numbers in, one sentence out;
* :mod:`~analysis.plots.pages`: the ``show_*`` page sections the notebooks call (figure + sentence, or one line
  saying what the store lacks).

Every public name the notebooks use is importable from ``analysis.plots`` (:data:`__all__`).
"""
from __future__ import annotations

from analysis.plots.captions import (
    describe_best_strength, describe_curves, describe_dataset_agreement, describe_downstream,
    describe_efficiency_correlations, describe_efficiency_scatter, describe_metric_agreement,
    describe_metric_by_config, describe_metric_groups, describe_paper_comparison, describe_run_overview,
    describe_seed_beats, describe_tc_scatter, describe_transfer, describe_transfer_sensitivity,
    describe_unsupervised, describe_variance, describe_violins, describe_winners,
)
from analysis.plots.figures import (
    config_medians_figure, curve_grid, method_scatter_grid, metric_by_config_figure, metric_groups_figure,
    percent_heatmap, rho_heatmap, rho_heatmap_grid, variance_figure, violin_grid,
)
from analysis.plots.pages import (
    PAPER_FIG2_NOISY, PAPER_FIG5_DSPRITES, PAPER_TRANSFER, config_median_table, metric_by_config, run_overview,
    curve_summary, show_best_strength, show_config_medians, show_correlations, show_curves, show_efficiency_correlations, show_efficiency_scatter,
    show_metric_by_config, show_metric_groups, show_metric_overview, show_paper_comparison,
    show_run_overview, show_seed_beats, show_tc_scatter, show_transfer, show_transfer_sensitivity, show_variance,
    show_violins, show_winners,
)
from analysis.plots.style import (
    DATASET_LABELS, METHOD_COLORS, METHOD_LABELS, METRIC_SHORT, datasets_of, key, label, md, metrics_of, missing,
    note, reason, setup, show_figure, show_table, wrapped,
)

__all__ = [
    # style
    "DATASET_LABELS", "METHOD_COLORS", "METHOD_LABELS", "METRIC_SHORT", "datasets_of", "key", "label", "md",
    "metrics_of", "missing", "note", "reason", "setup", "show_figure", "show_table", "wrapped",
    # figures
    "config_medians_figure", "curve_grid", "method_scatter_grid", "metric_by_config_figure", "metric_groups_figure",
    "percent_heatmap", "rho_heatmap", "rho_heatmap_grid", "variance_figure", "violin_grid",
    # captions
    "describe_best_strength", "describe_curves", "describe_dataset_agreement", "describe_downstream",
    "describe_efficiency_correlations", "describe_efficiency_scatter", "describe_metric_agreement",
    "describe_metric_by_config", "describe_metric_groups", "describe_paper_comparison", "describe_run_overview",
    "describe_seed_beats", "describe_tc_scatter", "describe_transfer", "describe_transfer_sensitivity",
    "describe_unsupervised", "describe_variance", "describe_violins", "describe_winners",
    # pages
    "PAPER_FIG2_NOISY", "PAPER_FIG5_DSPRITES", "PAPER_TRANSFER", "config_median_table", "metric_by_config",
    "curve_summary", "run_overview", "show_best_strength", "show_config_medians", "show_correlations", "show_curves", "show_efficiency_correlations",
    "show_efficiency_scatter", "show_metric_by_config", "show_metric_groups", "show_metric_overview",
    "show_paper_comparison", "show_run_overview", "show_seed_beats", "show_tc_scatter", "show_transfer",
    "show_transfer_sensitivity", "show_variance", "show_violins", "show_winners",
]
