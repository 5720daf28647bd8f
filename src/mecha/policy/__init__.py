"""Policy, the only gate: what a worker's result may write back, and the writes it plans (pure)."""
