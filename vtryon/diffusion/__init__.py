"""What the diffusion try-on engines (OOTDiffusion, CatVTON) share, built on diffusers and
transformers rather than re-written:

- ``components``: loading diffusers/transformers components from a folder in the released
  layout (``from_pretrained(local_dir, local_files_only=True)``, safetensors first), strictly.
- ``precision``: the compute dtype per device and precision request, and the VAE's.
- ``offload``: none / model (one model on the device at a time) / sequential (leaf level).
- ``vae``: encode and decode with slicing, optional tiling and fp16 upcasting.
- ``sampling``: seeding, initial noise, the scheduler loop, classifier-free guidance.
- ``framing``: the crop window the model sees and the paste-back into the full-size person.
- ``attention``: the attention glue each engine needs (OOTDiffusion's outfitting fusion,
  CatVTON's skipped cross-attention and its attention-only checkpoint).

Everything here imports torch, diffusers or transformers only inside functions or in modules
that the step backends import when they run.
"""
