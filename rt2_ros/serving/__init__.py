"""`rt2 serve`: host one local policy for many robots over OpenVLA, openpi and OpenAI protocols."""
