"""Every section of params.yaml and the dataclass that reads it, so the whole file is checked at once.

Each stage checks every section before it does any work, so a typo anywhere (`eval.suitez`, a string
where a number goes, an unknown section) fails the first stage in seconds, naming the key, rather than
the stage that reads it an hour later. The classes are imported by name only here: a stage's code deps
(its import closure, `python -m stair.deps`) stay the modules it runs, since checking another section
changes none of its outputs.
"""

import importlib

SECTIONS = {
    "data": "stair.data:DataParams",
    "base": "stages.base:BaseParams",
    "sft": "stair.training.sft:SFTParams",
    "distributed": "stair.launch:DistributedParams",
    "backend": "stair.generation:BackendParams",
    "reward": "stair.reward:RewardParams",
    "judges": "stair.judges:JudgeParams",
    "mcts": "stair.mcts:MCTSParams",
    "pairs": "stair.pairs:PairParams",
    "dpo": "stages.dpo:DPOStageParams",
    "prm_labels": "stair.prm:LabelParams",
    "prm": "stair.training.prm:PRMParams",
    "search": "stair.search:SearchParams",
    "heldout": "stair.evaluation:HeldoutParams",
    "eval": "stair.evaluation:EvalParams",
    "publish": "stair.hub.publish:PublishParams",
}
TOP_LEVEL = {"seed", "loop", *SECTIONS}  # `seed` and `loop` are checked where they are read (stages.common)


def section_class(section: str) -> type:
    module, _, name = SECTIONS[section].partition(":")
    return getattr(importlib.import_module(module), name)
