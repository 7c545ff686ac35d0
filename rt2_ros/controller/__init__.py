"""rt2_controller node package."""
