"""Model recipes built from config (tiny random VLAs for tests, demos and training)."""
