"""Logging and metrics shared by the operator and the agent."""
