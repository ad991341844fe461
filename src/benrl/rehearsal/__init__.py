"""`benrl rehearse`: a config's exact stage plan on CPU, offline, in minutes (see plan.py)."""
