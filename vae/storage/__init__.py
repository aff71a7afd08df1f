"""Crash-safe files on disk: atomic writes, the folders a command may write, locks, limits,
safe loads."""
