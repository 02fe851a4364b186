"""Training jobs: structured-CoT SFT, step-level DPO, and the process reward model."""
