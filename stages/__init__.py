"""One thin entry point per DVC stage: `python -m stages.<name>` reads its params, calls the library."""
