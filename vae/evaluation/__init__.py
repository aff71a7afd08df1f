"""How good it sounds: reconstruction figures, the judge that listens, distances between sets."""
