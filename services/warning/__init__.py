"""The warning service."""
