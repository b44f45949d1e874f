"""tap-braze-series: a Singer tap for Braze's time-series analytics exports."""
