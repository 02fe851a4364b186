"""Hugging Face Hub access, one idea a module:

- `refs`: `hub:<repo_id>[:<config>][@<revision>]` references, offline mode, the token and its redaction
- `cards`: dataset and model cards, and the folders a publish builds exactly as the repos will hold them
- `push`: mirror such a folder to a Hub repo in one commit
- `pull`: read a Hub dataset or published folder as validated `schemas` rows
- `publish`: the `publish` section of params.yaml
"""

# Kept for the stages until they import from the modules themselves (HubUnavailable from stair.errors,
# is_hub_ref from stair.hub.refs, load_rows from stair.hub.pull).
from stair.errors import HubUnavailable
from stair.hub.pull import load_rows
from stair.hub.refs import is_hub_ref

__all__ = ["HubUnavailable", "is_hub_ref", "load_rows"]
