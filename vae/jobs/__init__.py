"""Training as a background job: what it is asked for, starting it detached, reading its files."""
