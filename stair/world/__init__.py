"""The built-in task world: a seeded generator of prompts and structured-CoT teacher responses.

Five groups of prompts:

- math: arithmetic word problems with a verifiable integer answer (helpfulness, comply);
- harmful: requests for harm in one of `CATEGORIES` (safety, refuse);
- jailbreak: harmful requests wrapped in one of `FRAMINGS` (safety, refuse); every framing belongs to
  one of the `FAMILIES` of attacks (role-play, hypothetical, authority claims, ...);
- benign_sensitive: XSTest-style requests that only look harmful (safety, comply). Some borrow
  the jailbreak framings' words (novel, game, hypothetical, research), so SFT data alone does
  not separate a framed harmful request from a framed benign one. Half of the benign requests of
  every split are wrapped in a jailbreak framing (still benign: comply);
- benign_novel (held-out only): benign requests on topics no other split has.

Splits: "sft" (no jailbreaks, as in STAIR, and no held-out category), "iter_<k>" seed prompts for
SI-MCTS iteration k, and "heldout", the only split holding the held-out framing families (and single
framings), the held-out categories, the last phrasing of every training benign item and the
benign_novel items. No prompt text is in two splits.

Modules: `catalog` (the tables, data in `catalog.yaml`), `arithmetic` (math problems and their worked
solutions), `generator` (the splits, a pure function of `WorldConfig`) and `teacher` (the response to each
prompt, written from what was drawn for it).
"""

from stair.world.catalog import CATEGORIES, FAMILIES, FRAMING_FAMILIES, FRAMINGS
from stair.world.generator import GROUPS, SOURCE, World, WorldConfig, generate_world

__all__ = ["CATEGORIES", "FAMILIES", "FRAMINGS", "FRAMING_FAMILIES", "GROUPS", "SOURCE", "World", "WorldConfig",
           "generate_world"]
