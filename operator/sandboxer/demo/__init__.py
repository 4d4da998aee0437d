"""`sandboxer demo`: the scripted story on the playground."""
