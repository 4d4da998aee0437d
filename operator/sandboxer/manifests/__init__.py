"""Pure builders of the child objects of an ExperimentSandbox, and status derivation.

Every function here takes our models and returns plain Kubernetes manifests (dicts); nothing
talks to the API, so tests compare dicts and the contract tests validate them upstream.
"""
