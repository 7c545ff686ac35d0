"""Training the bundled demo VLA: sim demonstrations, scene VQA, co-fine-tuning, DAgger."""
