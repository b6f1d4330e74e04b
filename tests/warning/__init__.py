"""Tests of the warning service."""
