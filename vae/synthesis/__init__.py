"""A checkpoint as an instrument: encode, decode, move through latent space, flat maps of it.

Public modules (what code outside this package may import):
- ``inference``: ``Synthesiser`` (audio -> codes -> spectrograms -> audio), ``Clip``.
- ``latent``: ``lerp``, ``slerp``, ``interpolation_path``, ``latent_axes``.
- ``projection``: ``project``, ``cached_project``, ``place_by_neighbours``.
- ``showcase``: ``reconstruct_showcase``.
"""

__all__ = ["inference", "latent", "projection", "showcase"]
