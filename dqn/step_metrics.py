"""The metrics every gradient step reports, shared by both learners (no TensorFlow here)."""

# Per-step metrics, in the order of the vector a step returns. "mean" ones are averaged over a
# burst, "max" ones take the burst's maximum.
STEP_METRICS = (
    ("loss", "mean"),
    ("td_error_abs_mean", "mean"),
    ("td_error_abs_p50", "mean"),
    ("td_error_abs_p90", "mean"),
    ("td_error_abs_p99", "mean"),
    ("td_error_abs_max", "max"),
    ("zero_grad_fraction", "mean"),  # samples whose loss gradient is exactly 0
    ("over_bound_fraction", "mean"),  # samples with |td_error| > loss_bound, any loss
    ("q_mean", "mean"),
    ("q_abs_max", "max"),
    ("grad_norm", "mean"),  # global norm before clipping
)
METRIC_NAMES = tuple(name for name, _ in STEP_METRICS)
IS_MAX_METRIC = tuple(kind == "max" for _, kind in STEP_METRICS)
