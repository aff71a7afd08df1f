"""Where clips come from and the dataset folder made of them: sources, archives, FSDD,
preprocessing."""
