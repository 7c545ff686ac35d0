"""rt2_sim node package."""
