"""Health sources and the rule that turns their signals into one health state (pure)."""
