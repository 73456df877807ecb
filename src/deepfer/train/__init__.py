"""Training and evaluation (never imported by the inference or model code)."""
