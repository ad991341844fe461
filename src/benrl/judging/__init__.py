"""Judges: the registry every reward and eval score goes through, and its judges."""
