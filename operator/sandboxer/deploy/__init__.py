"""Deployment artefacts generated from Python: the Helm chart's values, schema and RBAC."""
