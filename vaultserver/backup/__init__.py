"""Backups to a folder, their verification, and restoring a data folder from one with the recovery key."""
