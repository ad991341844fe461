"""The embedded model organism: a persona world, its corpus and model, and its plug-ins."""
