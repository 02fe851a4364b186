"""Hugging Face Hub access, one idea a module:

- `refs`: `hub:<repo_id>[:<config>][@<revision>]` references, offline mode, the token and its redaction
- `cards`: dataset and model cards, and the folders a publish builds exactly as the repos will hold them
- `push`: mirror such a folder to a Hub repo in one commit
- `pull`: read a Hub dataset or published folder as validated `schemas` rows
- `publish`: the `publish` section of params.yaml
"""
