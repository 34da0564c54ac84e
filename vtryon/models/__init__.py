"""Checkpoints: what they are, where they live, how they are fetched, checked and loaded.

- ``manifest``: manifests/models.toml (+ ``--manifest``, ``$VTRYON_MANIFEST``) -> ModelEntry.
- ``store``: the models folder, the Hugging Face cache, the trust-on-first-use lock, the hash cache.
- ``checkpoint_io`` / ``torchscript_data``: reading files as data (never running their code).
- ``unwrap`` / ``build``: released file -> bare state dict -> network built on meta, strict.
- ``verify``: size, sha256, content and layout checks; ``inventory`` / ``status``: reports.
- ``pool``: ModelPool, the one way steps get models (precision, device, offload, cache).
- ``download`` / ``hub``: resumable verified https downloads, Hugging Face at pinned revisions.
- ``scan``: recognise checkpoint files by content and register them.
"""
