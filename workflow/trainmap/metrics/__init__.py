"""The 14 weight metrics of METHOD.md section 2 and the model families' weight groups."""
