"""Group `monitoring`: the prediction log, production skill, drift, data quality, the loop."""
