"""stair: STAIR safety alignment (structured CoT SFT, SI-MCTS, step-level DPO, PRM search) as a DVC pipeline."""

__version__ = "0.1.0"
