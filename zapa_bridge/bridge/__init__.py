"""The zapw side: its HTTP client (the one place its failures become our errors), the
session registry, and the reconciliation that keeps the two in line."""
