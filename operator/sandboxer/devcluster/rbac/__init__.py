"""RBAC of the embedded API: request attributes, rule matching, bindings, default policy."""
