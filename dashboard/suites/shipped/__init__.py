"""The suites that ship with scaledash, one directory each (see dashboard/suites/catalog.py)."""
