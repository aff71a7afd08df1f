"""The neural phase: a network that turns features into audio in one pass, and its training."""
